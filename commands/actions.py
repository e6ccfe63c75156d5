"""`/action`: follow-up action items (`A-<n>`) with an owner and a due time (seed 002: "action items have
clear owners and due dates"). Anyone adds one; naming `INC-<n>` in its text links it to that incident.
The owner or the commander closes it. At its due time an open item gets an `action_due` Timer's reminder
mentioning its owner (a role's holder looked up then)."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import select

from commands.context import Context, Result, post, record, role_holder
from commands.errors import CommandError, Refused
from commands.readiness import (
    check_note,
    check_text,
    local_time,
    next_number,
    owner_user,
    required_owner,
    resolve_due,
    split_fields,
)
from commands.registry import slash, timer, view
from commands.render import render, render_blocks, reply
from db.models import Incident, Timer
from db.readiness import ActionItem

USAGE = reply("actions.usage")
DUE = "action_due"
ACTION_ID = re.compile(r"^(?:A-?)?(\d{1,9})\Z", re.IGNORECASE)
INCIDENT_NAMED = re.compile(r"\bINC-(\d{1,9})\b", re.IGNORECASE)


def view_of(ctx: Context, item: ActionItem) -> dict[str, Any]:
    return {"item": item, "holder": owner_user(ctx, item.owner), "local": local_time(ctx.tz, item.due_at),
            "late": item.state == "open" and item.due_at is not None and item.due_at <= ctx.now}


def action_items(ctx: Context) -> list[ActionItem]:
    return list(ctx.session.exec(select(ActionItem).where(ActionItem.launch_id == ctx.launch.id)
                                 .order_by(ActionItem.number)).all())


def load(ctx: Context, token: str) -> ActionItem:
    match = ACTION_ID.match(token.strip())
    if not match:
        raise CommandError(reply("actions.not_an_id", token=token[:60]), USAGE)
    item = ctx.session.exec(select(ActionItem).where(ActionItem.launch_id == ctx.launch.id,
                                                     ActionItem.number == int(match.group(1)))
                            .with_for_update(key_share=True)).first()
    if item is None:
        raise CommandError(reply("actions.no_such_item", number=int(match.group(1))), USAGE)
    return item


def linked_incident(ctx: Context, text: str) -> int | None:
    match = INCIDENT_NAMED.search(text)
    if match is None:
        return None
    number = int(match.group(1))
    found = ctx.session.exec(select(Incident.id).where(Incident.launch_id == ctx.launch.id,
                                                       Incident.number == number)).first()
    if found is None:
        raise CommandError(reply("incident.no_such_incident", number=number, launch=ctx.launch), USAGE)
    return number


def add(ctx: Context, text: str, owner_token: str, due_token: str) -> ActionItem:
    body = check_text(text, USAGE, what="action item")
    owner = required_owner(ctx, owner_token, USAGE)
    due, when = resolve_due(ctx, due_token, USAGE, spans=True)
    incident = linked_incident(ctx, body)
    number = next_number(ctx, ActionItem)
    item = ActionItem(launch_id=ctx.launch.id, number=number, text=body, owner=owner, due_label=due.label,
                      due_at=when, incident_number=incident, created_by=ctx.user, created_at=ctx.now)
    ctx.session.add(item)
    ctx.session.flush()
    arm(ctx, item)
    record(ctx, "action.added", number=number, text=body, owner=owner, due=when.isoformat() if when else None,
           label=due.label, incident=f"INC-{incident}" if incident else None)
    post(ctx, ctx.launch.war_room, "action_item", kind="action.added", change="added", **view_of(ctx, item))
    return item


def arm(ctx: Context, item: ActionItem) -> None:
    """The item's due reminder (re-armed when T0 moves a T-offset due)."""
    for pending in ctx.session.exec(select(Timer).where(Timer.subject_id == item.id, Timer.kind == DUE,
                                                        Timer.done_at.is_(None))).all():  # type: ignore[union-attr]
        pending.done_at = ctx.now
        pending.payload = {**pending.payload, "cancelled": "re-armed"}
        ctx.session.add(pending)
    if item.state == "open" and item.due_at is not None and item.due_at > ctx.now:
        ctx.session.add(Timer(launch_id=ctx.launch.id, kind=DUE, subject_id=item.id, due_at=item.due_at,
                              created_at=ctx.now, payload={"due": item.due_at.isoformat()}))


def follow_t0(ctx: Context) -> None:
    """T0 moved: action items due at a T-offset move with it (told in the readiness message's stead)."""
    from commands.config_readiness import parse_due

    for item in action_items(ctx):
        due = parse_due(item.due_label) if item.due_label and item.state == "open" else None
        when = due.when(ctx.launch.t0) if due else None
        if due is None or when == item.due_at:
            continue
        before, item.due_at = item.due_at, when
        ctx.session.add(item)
        arm(ctx, item)
        record(ctx, "action.due_moved", number=item.number, label=item.due_label,
               before=before.isoformat() if before else None, after=when.isoformat() if when else None)
        post(ctx, ctx.launch.war_room, "action_item", kind="action.due_moved", change="moved", **view_of(ctx, item))


@timer(DUE, subject=ActionItem)
def action_due(ctx: Context, due: Timer) -> None:
    item = ctx.session.get(ActionItem, due.subject_id)
    if item is None or item.state != "open":
        return
    values = view_of(ctx, item)
    post(ctx, ctx.launch.war_room, "action_item_due", kind="action.due", **values)
    record(ctx, "action.due", number=item.number, owner=item.owner, holder=values["holder"])


def close(ctx: Context, item: ActionItem, note: str) -> Result:
    holder = owner_user(ctx, item.owner)
    commander = role_holder(ctx.session, ctx.launch.id, "commander")
    if ctx.user not in (holder, commander):
        raise Refused(reply("actions.only_owner_or_commander", item=item, holder=holder, commander=commander),
                      "/action done")
    if item.state == "done":
        return Result(reply=reply("actions.already_done", item=item, tz=ctx.tz))
    item.state, item.done_by, item.done_at, item.note = "done", ctx.user, ctx.now, note
    ctx.session.add(item)
    arm(ctx, item)
    record(ctx, "action.done", number=item.number, note=note)
    post(ctx, ctx.launch.war_room, "action_item", kind="action.done", change="done", **view_of(ctx, item))
    return Result(reply=reply("actions.done", item=item))


@slash("/action", usage=USAGE, summary="follow-up action items with an owner and a due date: add, done, list")
def action_command(ctx: Context, text: str) -> Result:
    text = text.strip()
    if not text:
        return Result(modal=render_blocks("action_add_modal.json.j2")[0])
    verb, _, rest = text.partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb == "list" and rest.lower() in ("", "mine"):
        items = action_items(ctx)
        if rest:
            items = [i for i in items if owner_user(ctx, i.owner) == ctx.user]
        return Result(reply=render("action_item_list.j2", items=[view_of(ctx, i) for i in items], mine=bool(rest)))
    token, _, note = rest.partition(" ")
    if verb == "done" and ACTION_ID.match(token) and "|" not in rest:
        return close(ctx, load(ctx, token), check_note(note, USAGE))
    if verb == "done" and not rest:
        raise CommandError(reply("actions.needs_id"), USAGE)
    head, fields = split_fields(text, ("owner", "due"), USAGE)
    item = add(ctx, head, fields.get("owner", ""), fields.get("due", ""))
    return Result(reply=reply("actions.added", item=item))


@view("action_add")
def add_submitted(ctx: Context, values: dict[str, str]) -> Result:
    errors: dict[str, str] = {}
    checks = {"text": lambda: check_text(values.get("text", ""), USAGE, what="action item"),
              "owner": lambda: required_owner(ctx, values.get("owner", ""), USAGE),
              "due": lambda: resolve_due(ctx, values.get("due", ""), USAGE, spans=True)}
    for field, check in checks.items():
        try:
            check()
        except CommandError as exc:
            errors[field] = exc.message
    if not errors:
        try:
            linked_incident(ctx, values.get("text", ""))
        except CommandError as exc:
            errors["text"] = exc.message
    if errors:
        return Result(view_errors=errors)
    item = add(ctx, values.get("text", ""), values.get("owner", ""), values.get("due", ""))
    return Result(reply=reply("actions.added", item=item))
