"""`python -m bot rehearse [--speed N] [--from T-30m] [--until T+4h] [--channel C…]`.

The configured run-of-show played on a FastClock through the real dispatcher and
the scheduler's due work: marks, the T0 announcement, heartbeats, and a scripted
day — a go/no-go, a Critical that escalates once and is acknowledged, a checkpoint,
a decision, a sign-off — each step a dispatcher call made as the role holder would.
The launch row is a rehearsal (every message says `[REHEARSAL]`), named apart from
the live launch, and its record goes to DATABASE_URL or else `rehearsal.db`, never
`warroom.db`. It ends by writing the retrospective and saying where everything is.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TextIO

from sqlmodel import Session, select

from bot.clock import FastClock
from bot.config import Env
from bot.outbox import Transport
from bot.rehearsal_metrics import DemoMetrics, serve_json, with_demo_rollout
from bot.runtime import Runtime, build_runtime
from bot.terminal import Console, ShellTransport, indent, terminal_text
from commands.config import Config, Probe, load_config
from commands.context import Context, Result, role_holder
from commands.export import export_text
from commands.files import t_label
from commands.parse import offset_of
from commands.registry import SLASH, TIMERS, action_handler
from db.models import Incident, Launch, OutboxMessage, Rollback, Timer
from db.session import make_engine, migrate, transaction

REHEARSAL_DB = "sqlite:///rehearsal.db"
POLL_S = 0.05  # at most this many real seconds between passes…
POLL_VIRTUAL_S = 15.0  # …and at most this many virtual seconds (so a 5m deadline is met within 15 s)
TIMER_KINDS = ("mark", "escalation", "heartbeat")
INCIDENT = ("Checkout returns 500s for some operators | impact: approvals queue delayed for a subset of operators "
            "| workaround: approve from the legacy tool")


@dataclass(frozen=True)
class Step:
    """One thing a person does in the rehearsal: a slash command or a button press."""

    at: timedelta  # from T0
    role: str  # acts as this role's holder
    kind: str  # "slash", "action", or "metric" (the demo source's error rate: bot/rehearsal_metrics.py)
    name: str  # "/incident" or "incident_ack"
    text: str  # the command text or the button value; "{inc}" is the scripted incident's number
    what: str  # what it rehearses

    @property
    def known(self) -> bool:
        if self.kind == "metric":
            return True
        return self.name in SLASH if self.kind == "slash" else action_handler(self.name) is not None


def script(config: Config) -> list[Step]:
    """The rehearsed day, relative to T0 (steps outside --from/--until are left out)."""
    sev1 = config.severity("sev1")
    ack_within = sev1.ack_within if isinstance(sev1.ack_within, timedelta) else None
    declared = timedelta(minutes=20)
    # acknowledged after the first escalation, well before the second would fall due
    acked = declared + (ack_within + min(timedelta(minutes=2), ack_within / 2) if ack_within else timedelta(minutes=7))
    steps = [Step(timedelta(minutes=-25), "commander", "slash", "/gonogo", "", "go/no-go poll")]
    steps += [Step(timedelta(minutes=-24), role, "action", "gonogo_vote", "go", f"{role} votes go")
              for role in config.gonogo_roles]
    declarer = "cx" if "cx" in config.roles else "commander"
    steps += [
        Step(declared, declarer, "slash", "/incident", f"sev1 {INCIDENT}", "a scripted Critical"),
        Step(acked, sev1.escalate_to[1] if len(sev1.escalate_to) > 1 else "commander", "action", "incident_ack",
             "{inc}", "acknowledged after one escalation"),
        Step(acked + timedelta(minutes=3), "eng_oncall", "slash", "/incident",
             "update {inc} Bad config rolled back; error rate under 1% again", "an update in the thread"),
        Step(acked + timedelta(minutes=13), "commander", "slash", "/incident",
             "resolve {inc} Config rolled back; watching error rates", "resolved by the owner"),
        Step(timedelta(hours=1), "commander", "slash", "/checkpoint", "First business checkpoint", "checkpoint"),
        Step(timedelta(hours=1, minutes=1), "commander", "action", "checkpoint_decision", "continue",
             "checkpoint decision"),
        Step(timedelta(hours=1, minutes=5), "commander", "slash", "/decision",
             "Keep the rollout to current operators until the T+4h checkpoint", "a logged decision"),
        Step(timedelta(hours=3, minutes=50), "commander", "slash", "/signoff", "", "sign-off round"),
    ]
    steps += [Step(timedelta(hours=3, minutes=51), role, "action", "signoff_vote", "accepted", f"{role} signs off")
              for role in config.signoff_roles]
    steps += [  # a short rollout: a phase advanced, a trigger proposed and cancelled
        Step(timedelta(minutes=5), "commander", "slash", "/rollout", "start", "the rollout's first phase"),
        Step(timedelta(minutes=30), "commander", "slash", "/rollout", "advance", "gates held: the next phase"),
        Step(timedelta(hours=2), "commander", "metric", "error_rate", "0.3", "the error rate climbs past 20%"),
        Step(timedelta(hours=2, minutes=15), "commander", "action", "rollback_cancel", "{rollback}",
             "the proposed rollback cancelled"),
        Step(timedelta(hours=2, minutes=16), "commander", "metric", "error_rate", "0.004", "the error rate recovers"),
    ]
    return sorted(steps + readiness_steps(config), key=lambda s: s.at)


def readiness_steps(config: Config) -> list[Step]:
    """Each critical gate delivered by its owner before the go/no-go (those already due were posted overdue
    when the rehearsal began), and a follow-up action item from the retrospective after the sign-off."""
    steps = [Step(timedelta(minutes=-29 + n), gate.owner if gate.owner in config.roles else "commander", "slash",
                  "/ready", f"done {gate.id} Evidence attached: rehearsal run", f"{gate.id} delivered")
             for n, gate in enumerate([g for g in config.readiness if g.critical][:4])]
    owner = "eng_oncall" if "eng_oncall" in config.roles else "commander"
    steps.append(Step(timedelta(hours=3, minutes=55), "scribe" if "scribe" in config.roles else "commander", "slash",
                      "/action", f"Post-incident review: timeline, MTTA/MTTR, lessons learned | owner: {owner} "
                      "| due: T+24h", "a follow-up action item from the retrospective"))
    return steps


def demo_probes() -> tuple[ThreadingHTTPServer, tuple[Probe, ...]]:
    """With no probes configured: one that answers (a local server) and one that cannot (port 9)."""
    server = serve_json(lambda: {"ok": True}, "rehearsal-probe")
    port = server.server_address[1]
    return server, (
        Probe(name="rehearsal-app", url=f"http://127.0.0.1:{port}/healthz", threshold_ms=300,
              every=timedelta(minutes=5), timeout=timedelta(seconds=1)),
        Probe(name="unreachable", url="http://127.0.0.1:9/", threshold_ms=300, every=timedelta(minutes=5),
              timeout=timedelta(seconds=1)),
    )


def _next_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


class Rehearsal:
    def __init__(self, runtime: Runtime, clock: FastClock, console: Console, start: datetime, end: datetime,
                 steps: list[Step]) -> None:
        self.runtime = runtime
        self.clock = clock
        self.console = console
        self.start = start
        self.end = end
        self.steps = steps
        self.t0 = runtime.config.t0
        self.incident: int | None = None
        self.skipped: list[str] = []
        self.demo_metrics: DemoMetrics | None = None

    def label(self, at: datetime) -> str:
        return t_label(at, self.t0) or f"{at:%H:%M}"

    def pump(self) -> None:
        self.runtime.settle(max_rounds=50)

    def act(self, step: Step, at: datetime | None = None) -> None:
        launch = self.launch()
        with Session(self.runtime.engine) as session:
            user = role_holder(session, launch.id, step.role)  # type: ignore[arg-type]
        text = step.text.replace("{inc}", str(self.incident or 1)).replace("{rollback}", self.pending_rollback())
        if step.kind == "metric":
            self.move_metric(step, at)
            return
        line = f"{step.name} {text}".strip() if step.kind == "slash" else f":press {step.name} {text}"
        self.console.print(f"\n▶ {self.label(at or self.clock.now())}  @{user or '?'} ({step.role}): {line}   # {step.what}")
        if not step.known:
            note = f"{step.name} is not on this build; step skipped"
            self.skipped.append(step.name)
            self.console.print(f"  [rehearsal] {note}")
            return
        if user is None:
            self.console.print(f"  [rehearsal] nobody holds {step.role}; step skipped")
            self.skipped.append(f"{step.name} (no {step.role})")
            return
        dispatcher = self.runtime.dispatcher
        result: Result = (dispatcher.slash(step.name, text, user, None) if step.kind == "slash"
                          else dispatcher.action(step.name, text, user, None))
        if step.name == "/incident" and text.startswith("sev") and result.reply:
            found = re.search(r"INC-(\d+)", result.reply)
            self.incident = int(found.group(1)) if found else None
        self.pump()
        if result.reply:
            self.console.print(indent(terminal_text(result.reply), f"  (only @{user}) ", "    "))

    def pending_rollback(self) -> str:
        with Session(self.runtime.engine) as session:
            found = session.exec(select(Rollback.id).where(Rollback.launch_id == self.launch().id,
                                                           Rollback.status == "pending")
                                 .order_by(Rollback.id.desc())).first()  # type: ignore[union-attr]
        return str(found or 0)

    def move_metric(self, step: Step, at: datetime | None) -> None:
        """The demo source answers the step's value from now on (a config's own sources are not moved)."""
        self.console.print(f"\n▶ {self.label(at or self.clock.now())}  {step.name} = {step.text}   # {step.what}")
        if self.demo_metrics is None:
            self.console.print("  [rehearsal] the config's own metric sources are read as they are; step skipped")
            return
        self.demo_metrics.error_rate = float(step.text)

    def launch(self) -> Launch:
        with Session(self.runtime.engine, expire_on_commit=False) as session:
            launch = session.exec(select(Launch).where(Launch.name == self.runtime.config.launch_name)).one()
            return launch

    def run(self) -> None:
        pending = list(self.steps)
        while True:
            now = self.clock.now()
            while pending and self.t0 is not None and self.t0 + pending[0].at <= now:
                step = pending.pop(0)
                self.pump()  # what fell due before the step (an escalation before its ack) goes first, however late
                self.act(step, self.t0 + step.at)  # shown at its mark in the script, however late the loop saw it
            self.pump()
            if now >= self.end:
                break
            time.sleep(max(0.002, min(POLL_S, POLL_VIRTUAL_S / self.clock.speed)))
        self.pump()
        # messages held back by Slack's pacing (1 a second a channel) are still delivered before the end
        deadline = time.monotonic() + 30
        while self.undelivered() and time.monotonic() < deadline:
            time.sleep(0.1)
            self.pump()

    def undelivered(self) -> int:
        with Session(self.runtime.engine) as session:
            return len(session.exec(select(OutboxMessage.id).where(OutboxMessage.status == "pending")).all())


def skip_before(runtime: Runtime, launch: Launch, start: datetime) -> None:
    """Marks before --from are not replayed: they are closed as skipped."""
    with transaction(runtime.engine) as session:
        for timer in session.exec(select(Timer).where(Timer.launch_id == launch.id, Timer.kind == "mark",
                                                      Timer.done_at.is_(None), Timer.due_at < start)).all():  # type: ignore[union-attr,operator]
            timer.done_at = start
            timer.payload = {**timer.payload, "skipped": "before the rehearsal's --from"}
            session.add(timer)


def run_rehearsal(env: Env, speed: float, start: str, until: str, channel: str | None, *,
                  stdout: TextIO | None = None, out_dir: Path | None = None) -> int:
    console = Console(stdout)
    if not os.environ.get("LOG_LEVEL"):
        logging.getLogger().setLevel(logging.WARNING)  # delivery logs would drown the rehearsal
    start_offset, end_offset = offset_of(start), offset_of(until)
    if start_offset is None or end_offset is None or end_offset <= start_offset or speed <= 0:
        print("warroom: rehearse needs --from before --until, marks like T-30m and T+4h, and --speed > 0",
              file=sys.stderr)
        return 2
    if channel and not env.bot_token:
        print("warroom: --channel needs SLACK_BOT_TOKEN (without it the rehearsal runs in the terminal)",
              file=sys.stderr)
        return 2
    config = load_config(env.config_path)
    real_now = datetime.now(UTC)
    t0 = config.t0 or _next_hour(real_now)
    name = f"{config.launch_name[:150]} rehearsal {real_now:%Y-%m-%d %H:%M:%S}"
    probe_server = None
    probes = config.probes
    if not probes:
        probe_server, probes = demo_probes()
    launch = config.launch.model_copy(update={"name": name, "t0": t0})
    channels = config.channels.model_copy(update={"war_room": channel, "broadcast": ()}) if channel else config.channels
    config = config.model_copy(update={"launch": launch, "channels": channels, "probes": probes})
    config, demo_metrics = with_demo_rollout(config)
    url = os.environ.get("DATABASE_URL") or REHEARSAL_DB
    env = dataclasses.replace(env, database_url=url)
    transport: Transport
    if channel:
        from bot.transport import SlackTransport, make_client

        transport = SlackTransport(make_client(env.bot_token, env.api_url))
    else:
        transport = ShellTransport(config, console, files_dir=out_dir)
    engine = make_engine(url)
    migrate(engine)
    clock = FastClock(t0 + start_offset, speed)
    runtime = build_runtime(env, transport, config=config, clock=clock, engine=engine, rehearsal=True,
                            outbox_workers=1, outbox_pace_s=1.0 if channel else 0.0)
    steps = [s for s in script(config) if start_offset <= s.at < end_offset]
    rehearsal = Rehearsal(runtime, clock, console, t0 + start_offset, t0 + end_offset, steps)
    rehearsal.demo_metrics = demo_metrics
    launch = rehearsal.launch()
    skip_before(runtime, launch, t0 + start_offset)
    missing = [k for k in TIMER_KINDS if k not in TIMERS] + sorted({s.name for s in steps if not s.known})
    seconds = (end_offset - start_offset).total_seconds() / speed
    console.print(f"[REHEARSAL] {config.launch_name[:150]}: {start} to {until} at {speed:g}x (about {seconds:.0f} s), "
                  f"T0 {t0.astimezone(config.tz):%Y-%m-%d %H:%M} {config.timezone}, "
                  f"{'in ' + channel if channel else 'in this terminal'}; record: {url}")
    if probe_server is not None:
        console.print("[REHEARSAL] no probes configured: rehearsing with a local one that answers and one that cannot")
    if missing:
        console.print(f"[REHEARSAL] not on this build, so left out: {', '.join(missing)}")
    try:
        clock.advance(t0 + start_offset - clock.now())  # setting up took real time: start the day at --from
        rehearsal.run()
        retro_path = (out_dir or Path.cwd()) / f"rehearsal-retrospective-{real_now:%Y%m%d-%H%M%S}.md"
        with Session(engine, expire_on_commit=False) as session:
            launch = session.exec(select(Launch).where(Launch.id == launch.id)).one()
            ctx = Context(session=session, now=clock.now(), config=config, user="rehearsal", launch=launch)
            retro_path.write_text(export_text(ctx, "md", launch), encoding="utf-8")
            sent = len(session.exec(select(OutboxMessage.id).where(OutboxMessage.launch_id == launch.id)).all())
            incidents = session.exec(select(Incident).where(Incident.launch_id == launch.id)).all()
    finally:
        runtime.outbox.stop()
        runtime.stop()
        if probe_server is not None:
            probe_server.shutdown()
            probe_server.server_close()
        if demo_metrics is not None:
            demo_metrics.stop()
    export = ("python -m bot export --format ndjson" if url == REHEARSAL_DB
              else f"python -m bot export --format ndjson --launch '{name}'")
    console.print(f"\n[REHEARSAL] finished: {sent} messages, {len(incidents)} incident(s), "
                  f"{sum(i.escalations for i in incidents)} escalation(s).")
    console.print(f"  record:        {url} (launch '{name}')")
    console.print(f"  retrospective: {retro_path}")
    console.print(f"  export it:     {export}" + ("   (reads the newest of warroom.db and rehearsal.db; "
                                                   "--database rehearsal.db to be explicit)" if url == REHEARSAL_DB else ""))
    return 0
