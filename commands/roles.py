"""`/role <role> @user` and `/roster`: who holds which launch role, and the commander check every family uses.

Roles are the config's `roles:` at first; every change is a new RoleAssignment row (append-only: the newest
row per role is its holder), written with who made it and audited as `role.assigned`.

Role names are lowercase words joined by underscores (`eng_oncall`), at most 40 characters. A name is
*known* when it is a standard role (commander, scribe, eng_oncall, devops, cx, exec), a role of the config
(`roles:`, an `escalate_to` chain, `gonogo.roles`, `signoff.roles`, a contingency owner) or has been set
before. An unknown name is refused with a suggestion, so a typo never creates a role nobody reads; to add
a genuinely new role, append `new`: `/role analytics @dana new`. `/role exec none` leaves a role unheld.
"""

from __future__ import annotations

import difflib
import re

from sqlmodel import select

from commands.authority import locked_launch
from commands.config_types import STANDARD_ROLES
from commands.context import Context, Result, post, record, role_holder, roles_of, roster
from commands.errors import CommandError, Refused
from commands.incident_channels import role_taken
from commands.parse import parse_user
from commands.registry import slash
from commands.render import render, reply
from db.models import RoleAssignment

USAGE = reply("roles.usage")
ROSTER_USAGE = reply("roles.usage_roster")
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")
COMMANDER = "commander"


def require_commander(ctx: Context, command: str) -> None:
    """Refuse (ephemeral, audited as `command.refused`) unless the actor holds the commander role now."""
    holder = role_holder(ctx.session, ctx.launch.id, COMMANDER)
    if holder is None or ctx.user != holder:
        raise Refused(reply("roles.refused_commander", command=command, holder=holder), command)


def require_role(ctx: Context, roles: tuple[str, ...] | list[str], command: str) -> list[str]:
    """The roles among `roles` the actor holds now; refused (and audited) when none."""
    held = [role for role in roles if role_holder(ctx.session, ctx.launch.id, role) == ctx.user]
    if not held:
        raise Refused(reply("roles.refused_role", command=command, roles=list(roles),
                            holders={r: role_holder(ctx.session, ctx.launch.id, r) for r in roles}), command)
    return held


def known_roles(ctx: Context) -> set[str]:
    cfg = ctx.config
    names = set(STANDARD_ROLES) | set(cfg.roles) | set(cfg.gonogo_roles) | set(cfg.signoff_roles)
    for severity in cfg.severities.values():
        names |= set(severity.escalate_to)
    names |= {c.owner for c in cfg.contingencies if ROLE_NAME.match(c.owner)}
    names |= {g.owner for g in cfg.readiness if ROLE_NAME.match(g.owner)}  # readiness owners
    names |= set(roster(ctx.session, ctx.launch.id))
    return names


def normalize_role(word: str) -> str:
    return word.strip().lower().replace("-", "_")


def parse_role(ctx: Context, word: str, *, allow_new: bool) -> str:
    role = normalize_role(word)
    if not ROLE_NAME.match(role):
        raise CommandError(reply("roles.bad_name", word=word[:40]), USAGE)
    known = known_roles(ctx)
    if role not in known and not allow_new:
        close = difflib.get_close_matches(role, sorted(known), n=1)
        raise CommandError(reply("roles.unknown", role=role, close=close[0] if close else None,
                                 known=sorted(known)), USAGE)
    return role


@slash("/role", usage=USAGE, summary="assign a launch role (commander; the first commander may be set by anyone)")
def role_command(ctx: Context, text: str) -> Result:
    words = text.split()
    if len(words) == 3 and words[2].lower() == "new":
        allow_new = True
        words = words[:2]
    else:
        allow_new = False
    if len(words) != 2:
        raise CommandError(reply("roles.role_and_person"), USAGE)
    role = parse_role(ctx, words[0], allow_new=allow_new)
    user = None if words[1].lower() in ("none", "nobody") else parse_user(words[1], USAGE)
    locked_launch(ctx)
    commander = role_holder(ctx.session, ctx.launch.id, COMMANDER)
    bootstrap = commander is None and role == COMMANDER and user is not None
    if not bootstrap:
        require_commander(ctx, "/role")
    elif ctx.user not in ctx.config.admins and not roles_of(ctx.session, ctx.launch.id, ctx.user):
        # an empty seat is not anyone's: with it comes /rollback
        raise Refused(reply("roles.refused_empty_seat", admins=ctx.config.admins), "/role")
    before = role_holder(ctx.session, ctx.launch.id, role)
    if before == user:
        return Result(reply=reply("roles.unchanged", role=role, user=user))
    ctx.session.add(RoleAssignment(launch_id=ctx.launch.id, role=role, user_id=user, assigned_by=ctx.user,
                                   assigned_at=ctx.now))
    record(ctx, "role.assigned", role=role, user=user, before=before, bootstrap=bootstrap)
    if user is not None:
        role_taken(ctx, role, user)
    post(ctx, ctx.launch.war_room, "role_changed", kind="role.changed", role=role, user=user, before=before,
         bootstrap=bootstrap)
    return Result(reply=reply("roles.assigned", role=role, user=user, bootstrap=bootstrap))


@slash("/roster", usage=ROSTER_USAGE, summary="who holds which launch role")
def roster_command(ctx: Context, text: str) -> Result:
    if text.strip():
        raise CommandError(reply("roles.roster_takes_nothing"), ROSTER_USAGE)
    holders = roster(ctx.session, ctx.launch.id)
    rows = []
    for role in sorted(set(holders) | set(STANDARD_ROLES) | set(ctx.config.roles)):
        latest = ctx.session.exec(
            select(RoleAssignment).where(RoleAssignment.launch_id == ctx.launch.id, RoleAssignment.role == role)
            .order_by(RoleAssignment.id.desc()).limit(1)  # type: ignore[union-attr]
        ).first()
        rows.append({"role": role, "user": latest.user_id if latest else None,
                     "by": latest.assigned_by if latest else None, "at": latest.assigned_at if latest else None})
    return Result(reply=render("roster.j2", rows=rows, tz=ctx.tz))
