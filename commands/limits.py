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
    recent = _newest(ctx, Activity.at, ctx.config.per_user_per_minute, Activity.launch_id == ctx.launch.id,
                     Activity.user_id == ctx.user, Activity.source == "command", Activity.at > ctx.now - MINUTE)
    if len(recent) >= ctx.config.per_user_per_minute:
        _refuse(ctx, recent, MINUTE, ctx.config.per_user_per_minute, "limits.commands_a_minute")
    if ask.declares:
        declared = _newest(ctx, Incident.declared_at, ctx.config.declarations_per_user_per_hour,
                           Incident.launch_id == ctx.launch.id, Incident.declared_by == ctx.user,
                           Incident.declared_at > ctx.now - HOUR)
        if len(declared) >= ctx.config.declarations_per_user_per_hour:
            _refuse(ctx, declared, HOUR, ctx.config.declarations_per_user_per_hour, "limits.declarations_an_hour")


def _unlimited(ctx: Context, ask: Ask) -> bool:
    assert ctx.launch.id is not None
    if ask.name in COMMANDER_UNLIMITED:
        return role_holder(ctx.session, ctx.launch.id, "commander") == ctx.user
    if (ask.name, ask.verb) in ROLE_HOLDERS_UNLIMITED:
        return bool(roles_of(ctx.session, ctx.launch.id, ctx.user))
    return False


def _newest(ctx: Context, column: Any, limit: int, *where: Any) -> list[datetime]:
    """The newest `limit` times in `column` of the rows `where` selects, oldest first."""
    return sorted(ctx.session.exec(select(column).where(*where).order_by(column.desc()).limit(limit)).all())


def _refuse(ctx: Context, times: list[datetime], window: timedelta, limit: int, answer: str) -> None:
    wait = max(times[0] + window - ctx.now, timedelta(seconds=1))
    raise CommandError(reply(answer, limit=limit, wait=wait))
