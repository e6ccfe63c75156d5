"""Per-user limits (INTERFACE.md, "Limits and hardening"): one user cannot bury the war room.

One check for every command, click and form, before it runs (Dispatcher.run): at most
`limits.per_user_per_minute` of one user's commands a minute (counted from the activity the
commands themselves record), and at most `limits.declarations_per_user_per_hour` declarations.
Role holders' acknowledgements and votes and the commander's rollback are never limited: they are
what a flood must not hold up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from commands.context import Context, role_holder, roles_of
from commands.errors import CommandError
from commands.parse import SEVERITY_WORDS
from commands.render import reply
from db.models import Activity, Incident

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
ROLE_HOLDERS_UNLIMITED = {("/incident", "ack"), ("incident_ack", ""), ("gonogo_vote", ""), ("signoff_vote", "")}
COMMANDER_UNLIMITED = {"/rollback", "rollback_confirm", "rollback_cancel"}
DECLARATIONS = {"incident_declare", "probe_declare"}  # the modal and the probe alert's button


@dataclass(frozen=True)
class Ask:
    """What a user asks for, as the limits see it: a command (`/incident`, its first word `sev1`),
    a button (`incident_ack`, its name before any `:choice`) or a form (`incident_declare`)."""

    name: str
    verb: str = ""

    @property
    def declares(self) -> bool:
        return self.name in DECLARATIONS or (self.name == "/incident" and self.verb in SEVERITY_WORDS)


def check_limits(ctx: Context, ask: Ask) -> None:
    """Raise (nothing stored, nothing posted) when the actor is over a limit; the reply says when to try again."""
    if not ctx.user or ctx.user[0] not in "UW" or _unlimited(ctx, ask):
        return
    _within(ctx, Activity.at, MINUTE, ctx.config.per_user_per_minute, "limits.commands_a_minute",
            Activity.launch_id == ctx.launch.id, Activity.user_id == ctx.user, Activity.source == "command")
    if ask.declares:
        _within(ctx, Incident.declared_at, HOUR, ctx.config.declarations_per_user_per_hour,
                "limits.declarations_an_hour", Incident.launch_id == ctx.launch.id, Incident.declared_by == ctx.user)


def _unlimited(ctx: Context, ask: Ask) -> bool:
    assert ctx.launch.id is not None
    if ask.name in COMMANDER_UNLIMITED:
        return role_holder(ctx.session, ctx.launch.id, "commander") == ctx.user
    if (ask.name, ask.verb) in ROLE_HOLDERS_UNLIMITED:
        return bool(roles_of(ctx.session, ctx.launch.id, ctx.user))
    return False


def _within(ctx: Context, column: Any, window: timedelta, limit: int, answer: str, *where: Any) -> None:
    """Refused if `limit` rows `where` selects have a time in `column` within the window: the limit-th
    newest (one row read, however many there are) says when the oldest of them leaves the window."""
    oldest: datetime | None = ctx.session.exec(
        select(column).where(*where, column > ctx.now - window).order_by(column.desc()).offset(limit - 1).limit(1)
    ).first()
    if oldest is not None:
        wait = max(oldest + window - ctx.now, timedelta(seconds=1))
        raise CommandError(reply(answer, limit=limit, wait=wait))
