"""`/ready`: the readiness gates before T0 (seeds 002, 004), their reminders and overdue messages.

A gate comes from the config's `readiness:` (its id is the config's, e.g. `qa-evidence`) or from
`/ready add` (commander, scribe; id `R-<n>`). Its owner is a role (whose holder is looked up whenever
someone is told, so `/role` changes are followed) or a Slack user. `readiness_remind_before` before its
due time a gate not ready gets a `ready_reminder` Timer's reminder, with a `ready_done` button; at its
due time a `ready_overdue` Timer posts that it is overdue (a critical one mentions the commander too).
A due given as a T-offset moves with T0 (`/launch t0` calls `follow_t0`). The go/no-go reads
`critical_gates`; the checkpoint and the heartbeat `before_t0_summary`.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from commands.authority import locked_launch
from commands.config import Config
from commands.config_readiness import MAX_ITEM_TEXT, ROLE_NAME, Due, parse_due
from commands.context import Context, Result, post, record, role_holder
from commands.errors import CommandError, Refused
from commands.parse import USER_ID, parse_user
from commands.registry import action, slash, timer, view
from commands.render import render, render_blocks, reply
from db.models import Launch, Timer
from db.readiness import ReadinessItem

USAGE = reply("readiness.usage")
ADD_USAGE = reply("readiness.usage_add")
STATES = ("pending", "at_risk", "blocked", "ready")
VERBS = {"done": "ready", "blocked": "blocked", "risk": "at_risk", "reopen": "pending"}
REMIND, OVERDUE = "ready_reminder", "ready_overdue"
MAX_NOTE = 1000
ADDERS = ("commander", "scribe")
FIELD_BAR = re.compile(r"\|(?![^<>]*>)")  # a `|` between fields, not the one inside Slack's <@U123|name>
GATE_NUMBER = re.compile(r"^(?:R-?)?(\d{1,9})\Z", re.IGNORECASE)


# -- owners and dues, shared with /action ---------------------------------------------
def owner_user(ctx: Context, owner: str) -> str | None:
    """Who the owner is now: the user, or the current holder of the owner role."""
    return owner if USER_ID.match(owner) else role_holder(ctx.session, ctx.launch.id, owner)


def parse_owner(ctx: Context, token: str, usage: str) -> str:
    """`@user`, `<@U…>`, `U…` or a known role name."""
    token = token.strip()
    if token.startswith(("<@", "@U", "@W")) or USER_ID.match(token):
        return parse_user(token, usage)
    role = token.lstrip("@").lower().replace("-", "_")  # `@qa` is the role qa
    from commands.roles import known_roles  # here: roles reads readiness owners (known_roles)

    known = known_roles(ctx)
    if not ROLE_NAME.match(role) or role not in known:
        close = difflib.get_close_matches(role[:40], sorted(known), n=1)
        raise CommandError(reply("readiness.unknown_owner", token=token[:60], close=close[0] if close else None),
                           usage)
    return role


def required_owner(ctx: Context, token: str, usage: str) -> str:
    if not token.strip():
        raise CommandError(reply("readiness.needs_owner"), usage)
    return parse_owner(ctx, token, usage)


def resolve_due(ctx: Context, token: str, usage: str, *, spans: bool = False) -> tuple[Due, datetime | None]:
    """The due and its time now; refused when it is not a due, or already past."""
    if not token.strip():
        raise CommandError(reply("readiness.needs_due", spans=spans), usage)
    due = parse_due(token, spans=spans, now=ctx.now) if len(token) <= 60 else None
    if due is None:
        raise CommandError(reply("readiness.not_a_due", token=token, spans=spans), usage)
    when = due.when(ctx.launch.t0)
    if when is not None and when <= ctx.now:
        raise CommandError(reply("readiness.due_past", token=token, local=local_time(ctx.tz, when)), usage)
    if when is not None and abs(when - ctx.now) > timedelta(days=366):
        raise CommandError(reply("readiness.due_too_far", token=token), usage)
    return due, when


def tidy(text: str) -> str:
    """Spaces folded within each line; line breaks kept (a form's multiline text)."""
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines() if line.strip())


def check_text(text: str, usage: str, *, what: str = "item") -> str:
    text = tidy(text)
    if not text:
        raise CommandError(reply("readiness.needs_text", what=what), usage)
    if len(text) > MAX_ITEM_TEXT:
        raise CommandError(reply("readiness.text_too_long", length=len(text), limit=MAX_ITEM_TEXT), usage)
    return text


def check_note(note: str, usage: str) -> str:
    note = tidy(note)
    if len(note) > MAX_NOTE:
        raise CommandError(reply("readiness.note_too_long", length=len(note), limit=MAX_NOTE), usage)
    return note


def split_fields(text: str, known: tuple[str, ...], usage: str) -> tuple[str, dict[str, str]]:
    """`text | owner: x | due: y | critical` -> ("text", {"owner": "x", "due": "y", "critical": ""})."""
    head, *parts = FIELD_BAR.split(text)
    fields: dict[str, str] = {}
    for part in parts:
        key, colon, value = part.strip().partition(":")
        key = key.strip().lower()
        if key not in known or (key != "critical" and not colon) or (key == "critical" and value.strip()):
            raise CommandError(reply("readiness.not_a_field", part=part.strip(), known=known), usage)
        fields[key] = value.strip()
    return head, fields


def local_time(tz: str, when: datetime | None) -> str:
    return when.astimezone(ZoneInfo(tz)).strftime("%a %d %b %H:%M %Z") if when else "when T0 is set"


def next_number(ctx: Context, model: Any) -> int:
    locked_launch(ctx)  # two adds at once take turns on the launch row
    highest = ctx.session.exec(select(func.max(model.number)).where(model.launch_id == ctx.launch.id)).one()
    return int(highest or 0) + 1


# -- the gates' timers ---------------------------------------------------------------------
def arm_gate(session: Session, item: ReadinessItem, remind_before: timedelta, now: datetime) -> None:
    """(Re)arm a gate's reminder and overdue timers from its due time; none once it is ready."""
    assert item.id is not None
    for pending in session.exec(select(Timer).where(Timer.subject_id == item.id, Timer.kind.in_((REMIND, OVERDUE)),  # type: ignore[attr-defined]
                                                    Timer.done_at.is_(None))).all():  # type: ignore[union-attr]
        pending.done_at = now
        pending.payload = {**pending.payload, "cancelled": "re-armed"}
        session.add(pending)
    if item.state == "ready" or item.due_at is None:
        return
    if item.due_at > now:
        item.overdue_at = None
        session.add(item)
    due = item.due_at.isoformat()
    if item.due_at - remind_before > now:
        session.add(Timer(launch_id=item.launch_id, kind=REMIND, subject_id=item.id,
                          due_at=item.due_at - remind_before, created_at=now, payload={"due": due}))
    if item.overdue_at is None:  # a due already past fires at the next pass
        session.add(Timer(launch_id=item.launch_id, kind=OVERDUE, subject_id=item.id, due_at=item.due_at,
                          created_at=now, payload={"due": due}))


def seed_readiness(session: Session, launch: Launch, config: Config, now: datetime) -> None:
    """The config's gates, when the launch is created (setup.ensure_launch)."""
    for gate in config.readiness:
        item = ReadinessItem(launch_id=launch.id, key=gate.id, text=gate.text, owner=gate.owner,
                             due_label=gate.due.label, due_at=gate.due.when(launch.t0), critical=gate.critical,
                             source="config", created_by="config", created_at=now)
        session.add(item)
        session.flush()
        arm_gate(session, item, config.readiness_remind_before, now)


def follow_t0(ctx: Context) -> None:
    """T0 moved: every gate due at a T-offset gets its new due time, re-armed, and the war room is told."""
    moved = []
    for item in gates(ctx):
        if item.due_label is None:
            continue
        due = parse_due(item.due_label)
        when = due.when(ctx.launch.t0) if due else None
        if when == item.due_at:
            continue
        before, item.due_at = item.due_at, when
        ctx.session.add(item)
        arm_gate(ctx.session, item, ctx.config.readiness_remind_before, ctx.now)
        moved.append(item)
        record(ctx, "readiness.due_moved", key=item.key, label=item.due_label,
               before=before.isoformat() if before else None, after=when.isoformat() if when else None)
    if moved:
        post(ctx, ctx.launch.war_room, "readiness_moved", kind="readiness.due_moved",
             items=[view_of(ctx, item) for item in moved])


@timer(REMIND, subject=ReadinessItem)
def reminder_due(ctx: Context, due: Timer) -> None:
    item = ctx.session.get(ReadinessItem, due.subject_id)
    if item is None or item.state == "ready" or item.due_at is None or item.due_at <= ctx.now:
        return  # ready already, or its due came first: the overdue message says it
    holder = owner_user(ctx, item.owner)
    post(ctx, ctx.launch.war_room, "readiness_reminder", kind="readiness.reminder", **view_of(ctx, item),
         left=item.due_at - ctx.now)
    record(ctx, "readiness.reminded", key=item.key, owner=item.owner, holder=holder)


@timer(OVERDUE, subject=ReadinessItem)
def overdue_due(ctx: Context, due: Timer) -> None:
    item = ctx.session.get(ReadinessItem, due.subject_id)
    if item is None or item.state == "ready" or item.due_at is None or item.overdue_at is not None:
        return
    item.overdue_at = ctx.now
    ctx.session.add(item)
    values = view_of(ctx, item)
    commander = role_holder(ctx.session, ctx.launch.id, "commander") if item.critical else None
    post(ctx, ctx.launch.war_room, "readiness_overdue", kind="readiness.overdue", urgent=item.critical,
         commander=commander, **values)
    record(ctx, "readiness.overdue", key=item.key, owner=item.owner, holder=values["holder"], critical=item.critical,
           state=item.state, commander=commander)


# -- reading -------------------------------------------------------------------------------
def gates(ctx: Context) -> list[ReadinessItem]:
    items = ctx.session.exec(select(ReadinessItem).where(ReadinessItem.launch_id == ctx.launch.id)).all()
    far = datetime.max.replace(tzinfo=ZoneInfo("UTC"))
    return sorted(items, key=lambda i: (i.due_at or far, i.id or 0))


def view_of(ctx: Context, item: ReadinessItem) -> dict[str, Any]:
    """What a template shows of a gate: the item, its owner's holder now, its due in local time."""
    return {"item": item, "holder": owner_user(ctx, item.owner), "local": local_time(ctx.tz, item.due_at),
            "overdue": item.state != "ready" and item.due_at is not None and item.due_at <= ctx.now}


def critical_gates(ctx: Context) -> list[dict[str, Any]]:
    """Every critical gate with its state (the go/no-go lists them; one not ready holds it at NO-GO)."""
    return [view_of(ctx, i) for i in gates(ctx) if i.critical]


def before_t0_summary(ctx: Context) -> dict[str, Any] | None:
    """For the checkpoint and the heartbeat: the tally and the critical gates not ready, until T0."""
    if ctx.launch.t0 is not None and ctx.now >= ctx.launch.t0:
        return None
    items = gates(ctx)
    if not items:
        return None
    return {"ready": sum(1 for i in items if i.state == "ready"), "all": len(items),
            "critical": [view_of(ctx, i) for i in items if i.critical and i.state != "ready"]}


def load(ctx: Context, token: str, usage: str = USAGE) -> ReadinessItem:
    token = token.strip()
    numbered = GATE_NUMBER.match(token)
    key = f"R-{int(numbered.group(1))}" if numbered else token.lower()
    item = ctx.session.exec(select(ReadinessItem).where(ReadinessItem.launch_id == ctx.launch.id,
                                                        ReadinessItem.key == key[:40])
                            .with_for_update(key_share=True)).first()
    if item is None:
        raise CommandError(reply("readiness.no_such_item", token=token[:60]), usage)
    return item


# -- changing --------------------------------------------------------------------------------
def add_gate(ctx: Context, text: str, owner: str, due: Due, when: datetime | None, critical: bool) -> ReadinessItem:
    number = next_number(ctx, ReadinessItem)
    item = ReadinessItem(launch_id=ctx.launch.id, key=f"R-{number}", number=number, text=text, owner=owner,
                         due_label=due.label, due_at=when, critical=critical, created_by=ctx.user, created_at=ctx.now,
                         changed_by=ctx.user, changed_at=ctx.now)
    ctx.session.add(item)
    ctx.session.flush()
    arm_gate(ctx.session, item, ctx.config.readiness_remind_before, ctx.now)
    record(ctx, "readiness.added", key=item.key, text=text, owner=owner, due=when.isoformat() if when else None,
           label=due.label, critical=critical)
    post(ctx, ctx.launch.war_room, "readiness_changed", kind="readiness.added", change="added", note="",
         **view_of(ctx, item))
    return item


def change_state(ctx: Context, item: ReadinessItem, state: str, note: str, command: str) -> Result:
    holder = owner_user(ctx, item.owner)
    commander = role_holder(ctx.session, ctx.launch.id, "commander")
    if ctx.user not in (holder, commander):
        raise Refused(reply("readiness.only_owner_or_commander", item=item, holder=holder, commander=commander),
                      command)
    if item.state == state and (state in ("ready", "pending") or note == item.note):
        return Result(reply=reply("readiness.already", item=item))
    before = item.state
    item.state, item.changed_by, item.changed_at = state, ctx.user, ctx.now
    item.note = note if state != "pending" else ""
    item.ready_at = ctx.now if state == "ready" else None
    if state == "pending":
        item.overdue_at = None  # reopened past its due: overdue again
    ctx.session.add(item)
    arm_gate(ctx.session, item, ctx.config.readiness_remind_before, ctx.now)
    record(ctx, f"readiness.{state}", key=item.key, before=before, after=state, note=note)
    post(ctx, ctx.launch.war_room, "readiness_changed", kind=f"readiness.{state}", change=state, before=before,
         note=note, **view_of(ctx, item))
    return Result(reply=reply("readiness.changed", item=item))


def add_modal(ctx: Context) -> Result:
    return Result(modal=render_blocks("readiness_add_modal.json.j2")[0])


@slash("/ready", usage=USAGE, summary="readiness gates before T0: list, add, done, blocked, risk, reopen")
def ready_command(ctx: Context, text: str) -> Result:
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb in ("", "list"):
        if rest:
            raise CommandError(reply("readiness.list_takes_nothing"), USAGE)
        items = gates(ctx)
        return Result(reply=render("readiness_list.j2", items=[view_of(ctx, i) for i in items],
                                   ready=sum(1 for i in items if i.state == "ready")))
    if verb == "add":
        if not rest:
            require_adder(ctx)
            return add_modal(ctx)
        head, fields = split_fields(rest, ("owner", "due", "critical"), ADD_USAGE)
        body = check_text(head, ADD_USAGE)
        owner = required_owner(ctx, fields.get("owner", ""), ADD_USAGE)
        due, when = resolve_due(ctx, fields.get("due", ""), ADD_USAGE)
        require_adder(ctx)
        item = add_gate(ctx, body, owner, due, when, "critical" in fields)
        return Result(reply=reply("readiness.added", item=item))
    if verb not in VERBS:
        raise CommandError(reply("readiness.not_a_subcommand", word=verb), USAGE)
    token, _, note = rest.partition(" ")
    if not token:
        raise CommandError(reply("readiness.needs_id", verb=verb), USAGE)
    note = check_note(note, USAGE)
    if verb in ("blocked", "risk") and not note:
        raise CommandError(reply("readiness.needs_reason", verb=verb), USAGE)
    if verb == "reopen" and note:
        raise CommandError(reply("readiness.only_an_id", verb=verb), USAGE)
    return change_state(ctx, load(ctx, token), VERBS[verb], note, f"/ready {verb}")


def require_adder(ctx: Context) -> None:
    from commands.roles import require_role

    require_role(ctx, ADDERS, "/ready add")


@action("ready_done")
def ready_done_button(ctx: Context, value: str) -> Result:
    if not value.strip() or len(value) > 60:
        raise CommandError(reply("common.unknown_button_value"))
    return change_state(ctx, load(ctx, value), "ready", "", "ready_done")


@view("readiness_add")
def add_submitted(ctx: Context, values: dict[str, str]) -> Result:
    errors: dict[str, str] = {}
    checks = {"text": lambda: check_text(values.get("text", ""), ADD_USAGE),
              "owner": lambda: required_owner(ctx, values.get("owner", ""), ADD_USAGE),
              "due": lambda: resolve_due(ctx, values.get("due", ""), ADD_USAGE)}
    parsed: dict[str, Any] = {}
    for field, check in checks.items():
        try:
            parsed[field] = check()
        except CommandError as exc:
            errors[field] = exc.message
    if errors:
        return Result(view_errors=errors)
    require_adder(ctx)
    due, when = parsed["due"]
    item = add_gate(ctx, parsed["text"], parsed["owner"], due, when, values.get("critical") == "yes")
    return Result(reply=reply("readiness.added", item=item))
