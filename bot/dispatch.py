"""The one way in: every edge (Slack, shell, rehearsal, scheduler) runs commands through here.

A command is one transaction: the launch, the acting user and `now` go in a Context, the command's
ordinary ORM writes and the messages it queues commit together, and the command runs once per
attempt. A write conflict (another replica won a race) rolls back and runs it again from scratch.
A CommandError rolls the command's writes back and becomes the actor's ephemeral reply; a refusal
(wrong role) is also kept on the audit trail. A signed Slack request's key is stored in the
same transaction whatever the outcome, so the same request a second time has no effect (Replayed).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

import commands.families  # noqa: F401  (registers the families)
from bot.clock import Clock
from commands.config import Config
from commands.context import Context, Result, note_activity, record
from commands.errors import CommandError, Refused
from commands.limits import Ask, check_limits
from commands.registry import SLASH, VIEWS, action_handler
from commands.render import reply
from commands.setup import launch_for_channel
from db.models import Launch, SeenRequest
from db.session import transaction

log = logging.getLogger("warroom.dispatch")
# C0 controls (NUL first: PostgreSQL cannot store it) other than tab and newlines, DEL, and lone surrogates
# (JSON can carry them; no database or message can)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
MAX_COMMAND_TEXT = 4000
ATTEMPTS = 3


class Replayed(Exception):
    """This request was handled before (a Slack retry, a double click, a replay): nothing is done."""


@dataclass
class Dispatcher:
    engine: Engine
    config: Config
    clock: Clock
    on_commit: Callable[[], None] = lambda: None  # wakes the outbox and the scheduler
    observe: Callable[[str, float], None] = lambda command, seconds: None  # command latency (bot/own_metrics.py)

    def timed(self, command: str, run: Callable[[], Result]) -> Result:
        started = time.monotonic()
        try:
            return run()
        finally:
            self.observe(command, time.monotonic() - started)

    def run(self, user: str, channel: str | None, fn: Callable[[Context], Result], what: str, *,
            ask: Ask | None = None, message_ts: str | None = None, request_key: str | None = None) -> Result:
        """Run fn in one transaction; errors become replies; a lost race is run again from scratch."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with transaction(self.engine) as session:
                    result = self._attempt(session, user, channel, fn, what, ask, message_ts, request_key)
            except (IntegrityError, OperationalError) as exc:
                if attempt == ATTEMPTS:
                    raise
                log.warning("retrying after a write conflict", extra={"what": what[:80], "error": type(exc).__name__})
                continue
            self.on_commit()
            return result
        raise AssertionError("unreachable")

    def _attempt(self, session: Session, user: str, channel: str | None, fn: Callable[[Context], Result],
                 what: str, ask: Ask | None, message_ts: str | None, request_key: str | None) -> Result:
        now = self.clock.now()

        def context() -> Context:
            return Context(session=session, now=now, config=self.config, user=user, channel=channel,
                           launch=launch_for_channel(session, self.config, channel, now), message_ts=message_ts)

        if request_key is not None:
            remember_request(session, request_key, now)
        ctx = context()
        try:
            if ask is not None:
                check_limits(ctx, ask)
            result = fn(ctx)
        except CommandError as error:
            # nothing of the command is kept: the transaction starts again with what stays whatever the
            # outcome (the request's key) and, for a refusal, its record on the audit trail
            session.rollback()
            if request_key is not None:
                remember_request(session, request_key, now)
            if isinstance(error, Refused):
                record(context(), "command.refused", command=error.command, reason=error.message,
                       attempted=what[:500])
            return Result(reply=defang(error.reply))
        note_activity(ctx)
        return result

    def slash(self, name: str, text: str, user: str, channel: str | None, *,
              request_key: str | None = None) -> Result:
        text = clean_text(text)
        command = SLASH.get(name)
        if command is None:
            return Result(reply=reply("edge.unknown_command", command=name[:40]))
        if len(text) > MAX_COMMAND_TEXT:
            return Result(reply=reply("edge.command_too_long", length=len(text), limit=MAX_COMMAND_TEXT,
                                      usage=command.usage))
        verb = text.split(maxsplit=1)[0].lower() if text.strip() else ""
        return self.timed(name, lambda: self.run(user, channel, lambda ctx: command.handler(ctx, text.strip()),
                                                 f"{name} {text}", ask=Ask(name, verb), request_key=request_key))

    def action(self, action_id: str, value: str, user: str, channel: str | None, *,
               message_ts: str | None = None, request_key: str | None = None) -> Result:
        value = clean_text(value)
        handler = action_handler(action_id)
        if handler is None:
            return Result(reply=reply("edge.unknown_button"))
        if len(value) > 200:
            return Result(reply=reply("common.unknown_button_value"))
        base = action_id.split(":", 1)[0]
        return self.timed(base, lambda: self.run(user, channel, lambda ctx: handler(ctx, value),
                                                 f"button {action_id} {value}", ask=Ask(base), message_ts=message_ts,
                                                 request_key=request_key))

    def view(self, callback_id: str, values: dict[str, str], user: str, channel: str | None, *,
             request_key: str | None = None) -> Result:
        handler = VIEWS.get(callback_id)
        if handler is None:
            return Result(reply=reply("edge.unknown_form"))
        values = {key: clean_text(value) for key, value in values.items()}
        return self.timed(callback_id, lambda: self.run(user, channel, lambda ctx: handler(ctx, values),
                                                        f"view {callback_id}", ask=Ask(callback_id),
                                                        request_key=request_key))

    def tick(self, fn: Callable[[Context], Any], *, launch_id: int | None = None, actor: str = "warroom") -> Any:
        """Scheduler work in its own transaction, with the same context commands get."""
        with transaction(self.engine) as session:
            now = self.clock.now()
            launch = (session.get(Launch, launch_id) if launch_id is not None else None) or launch_for_channel(
                session, self.config, None, now)
            out = fn(Context(session=session, now=now, config=self.config, user=actor, launch=launch))
        self.on_commit()
        return out


def remember_request(session: Session, key: str, now: datetime) -> None:
    """Keep the request's key in this transaction, or raise Replayed if it was kept before. Two copies
    arriving together: the second's INSERT of the key fails (IntegrityError), and its retry finds it."""
    key = key[:200]
    if session.get(SeenRequest, key) is not None:
        raise Replayed()
    session.add(SeenRequest(key=key, seen_at=now))


# the bot's own date tokens (commands/render.py slack_time): a time, no link part, nobody notified
_OWN_DATE = r"date\^\d+\^[{}a-z_ ]+\|[^<>^]*>"
_SPECIAL = re.compile(rf"<!(?!{_OWN_DATE})")


def defang(reply: str) -> str:
    """An error often quotes what the user typed: a quoted `<!channel>` must not become one."""
    return _SPECIAL.sub("&lt;!", reply)


def clean_text(text: str) -> str:
    """User text as warroom keeps it: control characters (NUL, escape, …) dropped; tabs and newlines kept."""
    return _CONTROL.sub("", text)
