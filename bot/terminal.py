"""How Slack messages look in a terminal: the shell's and the rehearsal's transport.

`ShellTransport` implements the outbox Transport: each post is printed as
`#war-room  bot: INCIDENT [Critical] …`, thread replies indented, updates shown as
updates, buttons listed with the shell line that presses them, files written to disk.
Slack's mrkdwn escapes (`&lt;` …) and tokens (`<@U1>`, `<#C1>`, `<!date^…|x>`) are
shown as a person would read them.
"""

from __future__ import annotations

import itertools
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from bot.outbox import Outcome
from commands.config import Config
from db.models import OutboxMessage

_TOKEN = re.compile(r"<([^<>]*)>")
REHEARSAL = "[REHEARSAL]"


def channel_names(config: Config) -> dict[str, str]:
    """Config channel ids -> readable names: the war room, then the broadcast channels."""
    names = {config.war_room: "#war-room"}
    for i, channel in enumerate(c for c in config.broadcast if c != config.war_room):
        names[channel] = "#operators" if i == 0 else f"#operators-{i + 1}"
    return names


def terminal_text(mrkdwn: str, names: dict[str, str] | None = None) -> str:
    """Slack mrkdwn as a person reads it: mentions, channels, dates and links resolved, escapes undone."""
    names = names or {}

    def token(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + target[1:]
        if target.startswith("#"):
            return names.get(target[1:], "#" + (label or target[1:]))
        if target.startswith("!date^") or target.startswith("!subteam^"):
            return label or target
        if target.startswith("!"):
            return "@" + target[1:]
        return f"{label} ({target})" if label else target

    text = _TOKEN.sub(token, mrkdwn)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def buttons_of(blocks: list[dict[str, Any]] | None) -> list[tuple[str, str, str]]:
    """(label, action_id, value) of every button and menu option in the blocks (actions blocks and
    section accessories). A `<name>:<choice>` id is shown by its name: `:press` takes either."""
    out = []
    for block in blocks or []:
        if block.get("type") == "actions":
            elements = block.get("elements", [])
        elif block.get("type") == "section" and isinstance(block.get("accessory"), dict):
            elements = [block["accessory"]]
        else:
            continue
        for element in elements:
            action_id = str(element.get("action_id", "")).partition(":")[0]
            if element.get("type") == "button":
                out.append((str((element.get("text") or {}).get("text", action_id)), action_id,
                            str(element.get("value", ""))))
            for option in element.get("options", []) or []:
                out.append((str((option.get("text") or {}).get("text", "")), action_id, str(option.get("value", ""))))
    return out


def block_lines(blocks: list[dict[str, Any]] | None, text: str) -> list[str]:
    """Text of section/header/context blocks that the message text does not already say."""
    said = _plain(text)
    lines = []
    for block in blocks or []:
        kind = block.get("type")
        pieces: list[str] = []
        if kind in ("section", "header") and isinstance(block.get("text"), dict):
            pieces.append(str(block["text"].get("text", "")))
        if kind == "section":
            pieces.extend(str(f.get("text", "")) for f in block.get("fields", []) or [])
        if kind == "context":
            pieces.extend(str(e.get("text", "")) for e in block.get("elements", []) if isinstance(e, dict))
        for piece in pieces:
            plain = _plain(piece)
            if plain and plain != REHEARSAL and plain not in said:
                lines.append(piece)
    return lines


def _plain(text: str) -> str:
    return " ".join(text.replace(REHEARSAL, "").split())


class Console:
    """Thread-safe printing that does not wreck a readline prompt being typed."""

    def __init__(self, out: TextIO | None = None, *, interactive: bool = False) -> None:
        self.out = out or sys.stdout
        self.interactive = interactive
        self.prompt: str | None = None  # set while input() waits
        self.lock = threading.RLock()

    def print(self, text: str = "") -> None:
        with self.lock:
            if self.interactive and self.prompt is not None:
                buffer = _line_buffer()
                self.out.write("\r\x1b[K" + text + "\n" + self.prompt + buffer)
            else:
                self.out.write(text + "\n")
            self.out.flush()


def _line_buffer() -> str:
    try:
        import readline

        return readline.get_line_buffer()
    except ImportError:  # pragma: no cover (Windows)
        return ""


def indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n") or [""]
    return "\n".join([first + lines[0]] + [rest + line for line in lines[1:]])


class ShellTransport:
    """The outbox's Transport for a terminal: print, never fail, answer with a made-up ts."""

    def __init__(self, config: Config, console: Console, *, files_dir: Path | None = None,
                 on_file: Callable[[Path], None] | None = None) -> None:
        self.names = channel_names(config)
        self.console = console
        self.files_dir = files_dir or Path.cwd()
        self.on_file = on_file
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.files: list[Path] = []

    def channel(self, channel: str) -> str:
        return self.names.get(channel, "#" + channel)

    def send(self, message: OutboxMessage, thread_ts: str | None, update_ts: str | None) -> Outcome:
        if message.method == "files.upload":
            return self._file(message)
        if message.method.startswith("conversations."):
            return self._conversation(message)
        with self._lock:
            ts = update_ts or f"{1_700_000_000 + next(self._ts):d}.000100"
        payload = message.payload
        raw = str(payload.get("text", ""))
        text = terminal_text(raw, self.names)
        where = f"{self.channel(message.channel):<12}"
        if update_ts:
            head, pad = f"{where}  bot (updated): ", " " * (len(where) + 16)
        elif thread_ts and payload.get("reply_broadcast"):  # a thread reply also shown in the channel
            head, pad = f"{where}  ↳ bot (in thread and channel): ", " " * (len(where) + 7)
        elif thread_ts:
            head, pad = f"{where}    ↳ bot: ", " " * (len(where) + 9)
        else:
            head, pad = f"{where}  bot: ", " " * (len(where) + 7)
        lines = [indent(text, head, pad)]
        for extra in block_lines(payload.get("blocks"), raw):
            lines.append(indent(terminal_text(extra, self.names), pad + "· ", pad + "  "))
        buttons = buttons_of(payload.get("blocks"))
        if buttons:
            lines.append(pad + "   ".join(f"[{label}] :press {aid} {value}" for label, aid, value in buttons))
        self.console.print("\n".join(lines))
        return Outcome(ok=True, ts=ts)

    def _file(self, message: OutboxMessage) -> Outcome:
        p = message.payload
        name = Path(str(p.get("filename") or "export.txt")).name
        content = str(p.get("content", ""))
        self.files_dir.mkdir(parents=True, exist_ok=True)
        path = self.files_dir / name
        path.write_text(content, encoding="utf-8", newline="")
        self.files.append(path)
        where = f"{self.channel(message.channel):<12}"
        comment = terminal_text(str(p.get("initial_comment", "")), self.names)
        self.console.print(f"{where}  bot uploaded {name} ({len(content.encode())} bytes, written to {path})"
                           + (f": {comment}" if comment else ""))
        if self.on_file:
            self.on_file(path)
        return Outcome(ok=True)

    def _conversation(self, message: OutboxMessage) -> Outcome:
        """Incident channels in a terminal: a made-up channel id, said on the console; no message to read."""
        p = message.payload
        if message.method == "conversations.create":
            with self._lock:
                channel = f"C0TERM{next(self._ts):05d}"
            self.names[channel] = "#" + str(p.get("name"))
            self.console.print(f"{'':<12}  bot opened {self.names[channel]}")
            return Outcome(ok=True, ts=channel, answer={"name": p.get("name")})
        if message.method == "conversations.invite":
            self.console.print(f"{self.channel(str(p.get('channel'))):<12}  bot invited {p.get('users')}")
        elif message.method == "conversations.archive":
            self.console.print(f"{self.channel(str(p.get('channel'))):<12}  bot archived the channel")
        return Outcome(ok=True, answer={"message": None})

    def find_sent(self, message: OutboxMessage, thread_ts: str | None) -> str | None:
        return None
