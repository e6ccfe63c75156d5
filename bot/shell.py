"""`python -m bot shell` (and `python -m bot` without tokens): the bot in a terminal.

The same Dispatcher, database and due work as the Slack bot; a ShellTransport prints
what would be posted. A background ticker runs due timers and delivery every half
second, so escalations and heartbeats appear while you wait; `:advance 10m` moves the
shell's clock (a ShiftedClock) and runs what fell due at once. Commands and the
ticker take turns (one lock), so a command's posts print before the next prompt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from sqlmodel import Session, select

from bot.clock import ShiftedClock
from bot.config import Env
from bot.runtime import Runtime, build_runtime
from bot.scheduler import earliest_due
from bot.terminal import Console, ShellTransport, block_lines, buttons_of, indent, terminal_text
from commands.config import load_config
from commands.context import Result, roster
from commands.defaults import FIRST_FOLLOW_UP
from commands.files import t_label
from commands.parse import USER_ID, format_duration, parse_duration
from commands.registry import ACTIONS, SLASH, TIMERS
from commands.setup import launch_for_channel
from db.models import Activity, Launch
from db.readiness import ActionItem
from db.session import transaction

DEFAULT_USER = "U0COMMANDER"
TICK_S = 0.5
HISTORY = Path.home() / ".warroom_history"
SHELL_HELP = """\
Shell commands (a line starting with / is a slash command, as in Slack):
  :as @U0ENG | :as eng_oncall | :as @alice   act as someone else (a role name acts as its holder)
  :press ACTION VALUE                         press a button, e.g. :press incident_ack 1
  :advance 10m                                move the clock forward and run what falls due
  :roster                                     who holds which role
  :time                                       the shell's clock
  :help                                       this text       :quit (or Ctrl-D) leave
"""


@dataclass
class Shell:
    runtime: Runtime
    console: Console
    clock: ShiftedClock
    user: str = DEFAULT_USER
    lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: threading.Event = field(default_factory=threading.Event)

    # -- the session ----------------------------------------------------------
    @property
    def war_room(self) -> str:
        return self.runtime.config.war_room

    def launch(self) -> Launch:
        with Session(self.runtime.engine, expire_on_commit=False) as session:
            return launch_for_channel(session, self.runtime.config, self.war_room, self.clock.now())

    def roles(self) -> dict[str, str | None]:
        launch = self.launch()
        assert launch.id is not None
        with Session(self.runtime.engine) as session:
            return roster(session, launch.id)

    def who(self, user: str | None = None) -> str:
        user = user or self.user
        mine = [role for role, holder in self.roles().items() if holder == user]
        return f"@{user} ({', '.join(mine)})" if mine else f"@{user} (no role)"

    def prompt(self) -> str:
        return f"{self.who()} #war-room> "

    def banner(self) -> str:
        launch = self.launch()
        where = self.runtime.env.database_url
        return (
            f"warroom shell: {launch.name}, no Slack needed (record: {where})\n"
            f"You are {self.who()}. Posts show where they would land in Slack; replies marked (only you) are ephemeral.\n"
            "  /incident sev1 checkout down     declare an incident (/warroom help lists every command)\n"
            "  /ready · /action <text> | owner: @U0ENG | due: 2d   the gates before T0; a follow-up item\n"
            "  :press incident_ack 1            press a button shown under a message; :as U0ENG acts as someone else\n"
            "  :advance 10m                     move the clock to see escalations now; :help, :quit"
        )

    def first_follow_up(self) -> None:
        """On the built-in config's first run, one follow-up action item, opened by the real `/action`."""
        launch = self.launch()
        with Session(self.runtime.engine) as session:
            if session.exec(select(ActionItem.id).where(ActionItem.launch_id == launch.id)).first() is not None:
                return
        self.show(lambda: self.runtime.dispatcher.slash("/action", FIRST_FOLLOW_UP, self.user, self.war_room))

    # -- doing ----------------------------------------------------------------
    def pump(self) -> None:
        """Run due work, then deliver everything that is ready."""
        with self.lock:
            self.runtime.settle(max_rounds=1)

    def handle(self, line: str) -> bool:
        """One line typed; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            name, _, text = line.partition(" ")
            self.show(lambda: self.runtime.dispatcher.slash(name.lower(), text, self.user, self.war_room))
            return True
        if not line.startswith(":"):
            self.say(line)
            return True
        verb, _, arg = line[1:].partition(" ")
        verb, arg = verb.lower(), arg.strip()
        if verb in ("quit", "q", "exit"):
            return False
        if verb in ("help", "h", "?"):
            self.console.print(self.help())
        elif verb == "as":
            self.act_as(arg)
        elif verb == "press":
            action_id, _, value = arg.partition(" ")
            if not action_id or not value.strip():
                self.console.print("Usage: :press ACTION VALUE   e.g. :press incident_ack 1")
            else:
                self.show(lambda: self.runtime.dispatcher.action(action_id, value.strip(), self.user, self.war_room))
        elif verb == "advance":
            self.advance(arg)
        elif verb == "roster":
            self.console.print("\n".join(f"  {role:<12} @{holder or '(nobody)'}" for role, holder in self.roles().items()))
        elif verb == "time":
            self.console.print(self.time_line())
        else:
            self.console.print(f":{verb[:20]} is not a shell command; :help lists them.")
        return True

    def show(self, call: object) -> None:
        """Run a command, deliver its posts, then show the actor's ephemeral reply."""
        with self.lock:
            result: Result = call()  # type: ignore[operator]
            self.runtime.settle(max_rounds=1)
        self.ephemeral(result)

    def ephemeral(self, result: Result) -> None:
        if result.modal is not None:
            title = (result.modal.get("title") or {}).get("text", "a form")
            self.console.print(f"(only you) Slack would open the form “{title}”. In the shell, type the command "
                               "with its text instead, e.g. /incident sev1 checkout down")
        parts = []
        if result.reply:
            parts.append(terminal_text(result.reply))
        for extra in block_lines(result.blocks, result.reply or ""):
            parts.append(terminal_text(extra))
        buttons = buttons_of(result.blocks)
        if buttons:
            parts.append("   ".join(f"[{label}] :press {aid} {value}" for label, aid, value in buttons))
        if result.view_errors:
            parts.extend(f"{k}: {v}" for k, v in result.view_errors.items())
        if parts:
            self.console.print(indent("\n".join(parts), "(only you) ", "           "))

    def say(self, line: str) -> None:
        """Plain text is a message in the war room: it counts as operator engagement."""
        launch = self.launch()
        with transaction(self.runtime.engine) as session:
            session.add(Activity(launch_id=launch.id, user_id=self.user, at=self.clock.now(), source="message"))
        self.console.print("(said in #war-room; a line starting with / is a command, :help for the shell)")

    def act_as(self, token: str) -> None:
        token = token.strip()
        if not token:
            self.console.print(f"You are {self.who()}. Usage: :as @U0ENG, :as eng_oncall or :as @alice")
            return
        match = re.fullmatch(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|@?([UW][A-Z0-9]+)", token)
        name = token.lstrip("@")
        note = ""
        if match:
            user = match.group(1) or match.group(2)
        elif name in self.roles():
            user = self.roles()[name] or ""
            if not user:
                self.console.print(f"Nobody holds {name}; /role {name} @user gives it to someone.")
                return
        else:
            user = "U" + re.sub(r"[^A-Z0-9]", "", name.upper())[:20]
            if not USER_ID.match(user):
                self.console.print(f"{token[:40]} is not a user; try :as @U0ENG or :as eng_oncall.")
                return
            note = f" ({token[:40]} is not a Slack id, so the shell calls them {user})"
        self.user = user
        self.console.print(f"You are now {self.who()}{note}.")

    def advance(self, arg: str) -> None:
        delta = parse_duration(arg)
        if delta is None:
            self.console.print("Usage: :advance 10m   (90s, 5m, 1h30m)")
            return
        with self.lock:
            target = self.clock.now() + delta
            # stop at each deadline on the way, as real time would: every ping is posted at its own time
            # (and the next one counts from there), not all at the end marked late
            self.runtime.settle()
            while (due := earliest_due(self.runtime.dispatcher)) is not None and self.clock.now() < due <= target:
                self.clock.advance(due - self.clock.now())
                self.runtime.settle()
            self.clock.advance(max(target - self.clock.now(), timedelta(0)))
            self.runtime.settle()
            self.console.print(f"(clock moved {format_duration(delta)}) {self.time_line()}")

    def time_line(self) -> str:
        now = self.clock.now()
        launch = self.launch()
        tz = self.runtime.config.tz
        label = t_label(now, launch.t0)
        return f"Shell clock: {now.astimezone(tz):%Y-%m-%d %H:%M} {tz.key}" + (f" ({label})" if label else "")

    def help(self) -> str:
        lines = [SHELL_HELP, "Slash commands:"]
        lines += [f"  {c.usage}" if len(c.usage) < 100 else f"  {c.name}  {c.summary}" for c in
                  sorted(SLASH.values(), key=lambda c: c.name)]
        lines.append("Buttons: " + ", ".join(sorted(ACTIONS)))
        return "\n".join(lines)

    # -- running --------------------------------------------------------------
    def ticker(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.pump()
            except Exception:  # the shell must outlive a bad pass
                logging.getLogger("warroom.shell").exception("background pass failed")

    def loop(self, stdin: TextIO, interactive: bool) -> int:
        thread = threading.Thread(target=self.ticker, name="shell-ticker", daemon=True)
        thread.start()
        try:
            while True:
                prompt = self.prompt()
                try:
                    if interactive:
                        self.console.prompt = prompt
                        line = input(prompt)
                    else:
                        line = stdin.readline()
                        if not line:
                            break
                        self.console.print(prompt + line.rstrip("\n"))
                except EOFError:
                    self.console.prompt = None
                    self.console.print("")
                    break
                except KeyboardInterrupt:
                    self.console.prompt = None
                    self.console.print("^C (type :quit or Ctrl-D to leave)")
                    continue
                finally:
                    self.console.prompt = None
                if not self.handle(line):
                    break
        finally:
            self._stop.set()
            thread.join(timeout=5)
            self.pump()
        return 0


def _readline(interactive: bool) -> None:
    if not interactive:
        return
    try:
        import atexit
        import readline
    except ImportError:  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY)
    readline.set_history_length(1000)
    atexit.register(lambda: _save_history(readline))


def _save_history(readline: object) -> None:
    with contextlib.suppress(OSError):
        readline.write_history_file(HISTORY)  # type: ignore[attr-defined]


def run_shell(env: Env, *, stdin: TextIO | None = None, stdout: TextIO | None = None,
              files_dir: Path | None = None, interactive: bool | None = None) -> int:
    stdin = stdin or sys.stdin
    if interactive is None:
        interactive = stdin.isatty() and (stdout or sys.stdout).isatty()
    if not os.environ.get("LOG_LEVEL"):
        logging.getLogger().setLevel(logging.WARNING)  # delivery logs would drown the conversation
    config = load_config(env.config_path)
    console = Console(stdout, interactive=interactive)
    clock = ShiftedClock()
    transport = ShellTransport(config, console, files_dir=files_dir)
    runtime = build_runtime(env, transport, config=config, clock=clock, outbox_pace_s=0.0, outbox_workers=1)
    commander = runtime.config.roles.get("commander") or DEFAULT_USER
    shell = Shell(runtime=runtime, console=console, clock=clock, user=commander)
    _readline(interactive)
    missing = [k for k in ("escalation", "heartbeat", "mark") if k not in TIMERS]
    try:
        console.print(shell.banner())
        if env.config_path is None:
            shell.first_follow_up()
        if missing:
            console.print(f"(this build has no handler yet for timers: {', '.join(missing)})")
        shell.pump()
        return shell.loop(stdin, interactive)
    finally:
        runtime.outbox.stop()
        runtime.stop()
