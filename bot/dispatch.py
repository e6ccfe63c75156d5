"""The one way in: every edge (Slack, shell, rehearsal, scheduler) runs commands through here.

A command runs in a transaction with the launch, the acting user and `now`. Commands that arrive
while another is being written share the next transaction (db/group_commit.py: one that fails its
checks is dropped in place; one that fails after writing makes them run again, each in a savepoint).
A CommandError undoes that command alone (nothing stored, nothing posted) and becomes the actor's
ephemeral reply; a refusal (wrong role) is also written to the audit trail; nothing is acked before
its transaction has committed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

import commands.families  # noqa: F401  (registers the families)
from bot.guard import REQUEST_KEY, Replayed
from commands.clock import Clock
from commands.config import Config
from commands.context import Context, Result, defer, note_activity, record
from commands.errors import CommandError, Refused
from commands.escape import slack_escape
from commands.registry import ACTIONS, SLASH, VIEWS
from commands.setup import launch_for_channel
from db.group_commit import GroupCommit, Undo
from db.models import Launch, SeenRequest
from db.session import transaction

log = logging.getLogger("warroom.dispatch")
# C0 controls (NUL first: PostgreSQL cannot store it) other than tab and newlines, and DEL
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_COMMAND_TEXT = 4000
RETRIES_ON_CONFLICT = 3


@dataclass
class Dispatcher:
    engine: Engine
    config: Config
    clock: Clock
    on_commit: Callable[[], None] = lambda: None  # wakes the outbox
    writes: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        # commands arriving together share a transaction (db/group_commit.py); on_commit is read late (wire())
        self.writes = GroupCommit(self.engine, committed=lambda: self.on_commit())

    def run(self, user: str, channel: str | None, fn: Callable[[Context], Result], what: str,
            message_ts: str | None = None) -> Result:
        """Run fn in a transaction; errors become replies; lost races are retried."""
        request_key = REQUEST_KEY.get()
        for attempt in range(RETRIES_ON_CONFLICT):
            try:
                result: Result = self.writes.run(
                    lambda session, undo: self._attempt(session, undo, user, channel, fn, what, message_ts,
                                                        request_key))
                if request_key is not None:
                    REQUEST_KEY.set(None)
                return result
            except (IntegrityError, OperationalError) as exc:
                # a concurrent writer won a race (unique number, serialization): try again from scratch
                log.warning("retrying after a write conflict", extra={"what": what, "error": type(exc).__name__})
                if attempt == RETRIES_ON_CONFLICT - 1:
                    raise
        raise AssertionError("unreachable")

    def _attempt(self, session: Session, undo: Undo, user: str, channel: str | None,
                 fn: Callable[[Context], Result], what: str, message_ts: str | None,
                 request_key: str | None) -> Result:
        """One command in a (possibly shared) transaction; `undo` takes back its writes alone."""
        now = self.clock.now()

        def context() -> Context:
            launch = launch_for_channel(session, self.config, channel, now)
            return Context(session=session, now=now, config=self.config, user=user, launch=launch,
                           channel=channel, message_ts=message_ts)

        def seen() -> None:
            """A signed Slack request is handled at most once: its key is kept with the command's other rows,
            last (a command that fails its checks has then written nothing: db/group_commit.py undoes it in
            place). A second time, the key's row fails inside this command's undo block."""
            if request_key is not None:
                defer(session, SeenRequest, key=request_key[:200], seen_at=now)

        try:
            try:
                with undo():
                    ctx = context()
                    result = fn(ctx)
                    seen()
                    note_activity(ctx)
                return result
            except Refused as refusal:  # nothing of the command is kept but the refusal, on the audit trail
                with undo():
                    ctx = context()
                    seen()
                    record(ctx, "command.refused", command=refusal.command, reason=refusal.message,
                           attempted=what[:500])
                return Result(reply=defang(refusal.reply))
        except CommandError as error:
            return Result(reply=defang(error.reply))
        except IntegrityError:  # the request's key is taken: Slack (or someone) sent it again
            if request_key is not None and session.get(SeenRequest, request_key[:200]) is not None:
                raise Replayed() from None
            raise

    def slash(self, name: str, text: str, user: str, channel: str | None) -> Result:
        text = clean_text(text)
        command = SLASH.get(name)
        if command is None:
            return Result(reply=f"`{name[:40]}` is not a warroom command. Try /warroom help.")
        if len(text) > MAX_COMMAND_TEXT:
            return Result(reply=f"That command is {len(text)} characters long; keep it under {MAX_COMMAND_TEXT}.\n"
                                f"Usage: {slack_escape(command.usage)}")
        return self.run(user, channel, lambda ctx: command.handler(ctx, text.strip()), f"{name} {text}")

    def action(self, action_id: str, value: str, user: str, channel: str | None,
               message_ts: str | None = None) -> Result:
        value = clean_text(value)
        handler = ACTIONS.get(action_id)
        if handler is None:
            return Result(reply="That button is not one warroom knows.")
        if len(value) > 200:
            return Result(reply="That button's value is not one warroom knows.")
        return self.run(user, channel, lambda ctx: handler(ctx, value), f"button {action_id} {value}",
                        message_ts=message_ts)

    def view(self, callback_id: str, values: dict[str, str], user: str, channel: str | None) -> Result:
        handler = VIEWS.get(callback_id)
        if handler is None:
            return Result(reply="That form is not one warroom knows.")
        values = {key: clean_text(value) for key, value in values.items()}
        return self.run(user, channel, lambda ctx: handler(ctx, values), f"view {callback_id}")

    def tick(self, fn: Callable[[Context], Any], *, launch_id: int | None = None, actor: str = "warroom") -> Any:
        """Scheduler work in its own transaction, with the same context commands get."""
        with transaction(self.engine) as session:
            now = self.clock.now()
            launch = (session.get(Launch, launch_id) if launch_id is not None else None) or launch_for_channel(
                session, self.config, None, now)
            ctx = Context(session=session, now=now, config=self.config, user=actor, launch=launch)
            out = fn(ctx)
        self.on_commit()
        return out


def defang(reply: str) -> str:
    """An error often quotes what the user typed: a quoted `<!channel>` must not become one."""
    return reply.replace("<!", "&lt;!")


def clean_text(text: str) -> str:
    """User text as warroom keeps it: control characters (NUL, escape, …) dropped; tabs and newlines kept."""
    return _CONTROL.sub("", text)
