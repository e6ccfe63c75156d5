"""`/incident`: declare, acknowledge, update, resolve, re-rate, re-own, list and show incidents."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from sqlalchemy import update
from sqlmodel import select

from commands.clocks import arm_incident_clocks, cancel_incident_clocks, severity_changed
from commands.config import Config
from commands.context import Context, Result, post, record, role_holder
from commands.errors import CommandError, Refused
from commands.parse import parse_incident_id, parse_severity, parse_user
from commands.registry import action, slash, view
from commands.render import render, reply
from db.channels import room_of
from db.models import Incident, Launch

USAGE = reply("incident.usage")
DECLARE_USAGE = reply("incident.usage_declare")
UPDATE_USAGE = reply("incident.usage_update")
SEV_USAGE = reply("incident.usage_sev")
OWNER_USAGE = reply("incident.usage_owner")
MAX_SUMMARY = 500
MAX_TEXT = 2000
OPEN = ("open", "acknowledged")
PERMALINK = re.compile(r"^https://[a-z0-9.-]+\.slack\.com/archives/[A-Z0-9]{2,40}/p\d{6,20}\Z")  # chat.getPermalink's
_FIELD_SPLIT = re.compile(r"\s*\|\s*(?=(?:impact|workaround)\s*:)", re.IGNORECASE)


def incident_ref(incident: Incident) -> str:
    return f"incident:{incident.id}"


def room_ref(incident: Incident) -> str:
    """The notification's copy in the incident's own channel (commands/incident_channels.py)."""
    return f"incident:{incident.id}:room"


@dataclass(frozen=True)
class Declaration:
    severity: str
    summary: str
    impact: str = ""
    workaround: str = ""
    source: str | None = None


def parse_declaration(severity_word: str, rest: str) -> Declaration:
    severity = parse_severity(severity_word)
    if severity is None:
        raise CommandError(reply("incident.not_a_severity", word=severity_word), DECLARE_USAGE)
    parts = [p.strip() for p in _FIELD_SPLIT.split(rest)]
    fields: dict[str, str] = {"summary": parts[0]}
    for extra in parts[1:]:
        key, _, value = extra.partition(":")
        key = key.strip().lower()
        if not value.strip():
            raise CommandError(reply("incident.needs_text_after", key=key), DECLARE_USAGE)
        fields[key] = value.strip()
    return validated(Declaration(severity=severity, **fields))


def validated(decl: Declaration) -> Declaration:
    if not decl.summary:
        raise CommandError(reply("incident.needs_summary"), DECLARE_USAGE)
    if len(decl.summary) > MAX_SUMMARY:
        raise CommandError(reply("incident.summary_too_long", length=len(decl.summary), limit=MAX_SUMMARY),
                           DECLARE_USAGE)
    for name in ("impact", "workaround"):
        if len(getattr(decl, name)) > MAX_TEXT:
            raise CommandError(reply("incident.field_too_long", field=name, limit=MAX_TEXT), DECLARE_USAGE)
    return decl


def declare(ctx: Context, decl: Declaration) -> Incident:
    """Store the incident, queue its notification, start its clocks."""
    assert ctx.launch.id is not None
    severity = ctx.config.severity(decl.severity)
    number = next_incident_number(ctx)
    first_role = severity.escalate_to[0] if severity.escalate_to else None
    owner = (role_holder(ctx.session, ctx.launch.id, first_role) if first_role else None) or ctx.user
    incident = Incident(
        launch_id=ctx.launch.id, number=number, severity=decl.severity, summary=decl.summary, impact=decl.impact,
        workaround=decl.workaround, owner=owner, declared_by=ctx.user, declared_at=ctx.now,
        next_update_at=ctx.now + severity.update_every, source=decl.source,
    )
    ctx.session.add(incident)
    ctx.session.flush()  # its id: the audit event, the notification and the clocks point at it
    record(ctx, "incident.declared", incident_id=incident.id, number=number, severity=decl.severity,
           summary=decl.summary, impact=decl.impact, workaround=decl.workaround, owner=owner, source=decl.source)
    post(ctx, ctx.launch.war_room, "incident", kind="incident.notification", ref=incident_ref(incident),
         urgent=decl.severity in ("sev1", "sev2"), **incident_values(ctx, incident))
    arm_incident_clocks(ctx, incident)
    from commands.incident_channels import open_channel  # it builds on this module

    open_channel(ctx, incident)
    return incident


def next_incident_number(ctx: Context) -> int:
    """The launch's next INC number, counted in the launch row by one UPDATE: replicas declaring at once
    take turns on the row (the unique constraint on the number stays the last word)."""
    return int(ctx.session.execute(
        update(Launch).where(Launch.id == ctx.launch.id)  # type: ignore[arg-type]
        .values(incident_seq=Launch.incident_seq + 1).returning(Launch.incident_seq)).scalar_one())


def incident_values(ctx: Context, incident: Incident) -> dict[str, Any]:
    return {"incident": incident, "severity": ctx.config.severity(incident.severity),
            "room": room_of(ctx.session, incident.id) if ctx.config.incident_channels else None}


def load(ctx: Context, token: str, usage: str = USAGE, *, lock: bool = True) -> Incident:
    number = parse_incident_id(token, usage)
    query = select(Incident).where(Incident.launch_id == ctx.launch.id, Incident.number == number)
    incident = ctx.session.exec(query.with_for_update(key_share=True) if lock else query).first()
    if incident is None:
        raise CommandError(reply("incident.no_such_incident", number=number, launch=ctx.launch), usage)
    return incident


def require_open(incident: Incident, what: str) -> None:
    if incident.status == "resolved":
        raise CommandError(reply("incident.already_resolved", incident=incident, what=what))


def require_owner_or_commander(ctx: Context, incident: Incident, command: str) -> None:
    commander = role_holder(ctx.session, ctx.launch.id, "commander")
    if ctx.user not in (incident.owner, commander):
        raise Refused(reply("incident.only_owner_or_commander", incident=incident, commander=commander), command)


def refresh_message(ctx: Context, incident: Incident) -> None:
    """Show the incident's current state on its original message."""
    values = incident_values(ctx, incident)
    post(ctx, ctx.launch.war_room, "incident", kind="incident.message_update", update_ref=incident_ref(incident),
         **values)
    if values["room"] is not None and values["room"].status == "open":  # its copy there too
        post(ctx, values["room"].channel_id, "incident", kind="incident.message_update", update_ref=room_ref(incident),
             **values)


def thread(ctx: Context, incident: Incident, template: str, kind: str, **values: Any) -> None:
    post(ctx, ctx.launch.war_room, template, kind=kind, thread_ref=incident_ref(incident),
         **incident_values(ctx, incident), **values)


def page(ctx: Context, incident: Incident, action: str) -> None:
    """Tell PagerDuty (commands/paging.py, which builds on this module: imported when used)."""
    from commands.paging import queue_event

    queue_event(ctx, incident, action, why=action)


def acknowledge(ctx: Context, incident: Incident) -> Result:
    require_open(incident, "acknowledged")
    if incident.acknowledged_at is not None:
        return Result(reply=reply("incident.already_acked", incident=incident, tz=ctx.tz))
    incident.status = "acknowledged"
    incident.acknowledged_by = ctx.user
    incident.acknowledged_at = ctx.now
    ctx.session.add(incident)
    cancelled = cancel_incident_clocks(ctx, incident, "escalation", why="acknowledged")
    record(ctx, "incident.acknowledged", incident_id=incident.id, number=incident.number,
           after_s=(ctx.now - incident.declared_at).total_seconds(), escalations_stopped=cancelled)
    page(ctx, incident, "acknowledge")
    thread(ctx, incident, "incident_acked", "incident.acknowledged")
    refresh_message(ctx, incident)
    return Result(reply=reply("incident.acknowledged", incident=incident))


def resolve(ctx: Context, incident: Incident, note: str) -> Result:
    require_open(incident, "resolved")
    require_owner_or_commander(ctx, incident, "/incident resolve")
    if len(note) > MAX_TEXT:
        raise CommandError(reply("incident.note_too_long", limit=MAX_TEXT))
    incident.status = "resolved"
    incident.resolved_by = ctx.user
    incident.resolved_at = ctx.now
    incident.resolution = note
    incident.next_update_at = None
    ctx.session.add(incident)
    cancel_incident_clocks(ctx, incident, "escalation", "plan_check", why="resolved")
    record(ctx, "incident.resolved", incident_id=incident.id, number=incident.number, note=note,
           after_s=(ctx.now - incident.declared_at).total_seconds())
    page(ctx, incident, "resolve")
    thread(ctx, incident, "incident_resolved", "incident.resolved")
    refresh_message(ctx, incident)
    from commands.incident_channels import archive_later

    archive_later(ctx, incident)
    return Result(reply=reply("incident.resolved", incident=incident))


def add_update(ctx: Context, incident: Incident, text: str) -> Result:
    require_open(incident, "updated")
    if not text:
        raise CommandError(reply("incident.update_needs_text"), UPDATE_USAGE)
    if len(text) > MAX_TEXT:
        raise CommandError(reply("incident.update_too_long", length=len(text), limit=MAX_TEXT), UPDATE_USAGE)
    severity = ctx.config.severity(incident.severity)
    incident.last_update_at = ctx.now
    incident.next_update_at = ctx.now + severity.update_every
    ctx.session.add(incident)
    cancel_incident_clocks(ctx, incident, "plan_check", why="update posted")
    record(ctx, "incident.updated", incident_id=incident.id, number=incident.number, text=text)
    thread(ctx, incident, "incident_update", "incident.updated", text=text)
    refresh_message(ctx, incident)
    return Result(reply=reply("incident.update_posted", incident=incident))


def change_severity(ctx: Context, incident: Incident, word: str) -> Result:
    new = parse_severity(word)
    if new is None:
        raise CommandError(reply("incident.not_a_severity", word=word), SEV_USAGE)
    require_open(incident, "re-rated")
    require_owner_or_commander(ctx, incident, "/incident sev")
    if new == incident.severity:
        return Result(reply=reply("incident.already_severity", incident=incident, severity=ctx.config.severity(new)))
    old = incident.severity
    incident.severity = new
    ctx.session.add(incident)
    record(ctx, "incident.severity_changed", incident_id=incident.id, number=incident.number, before=old, after=new)
    severity_changed(ctx, incident)
    from commands.incident_channels import open_channel

    open_channel(ctx, incident)  # re-rated into a severity that gets a channel
    thread(ctx, incident, "incident_severity", "incident.severity_changed",
           before=ctx.config.severity(old), after=ctx.config.severity(new))
    refresh_message(ctx, incident)
    return Result(reply=reply("incident.now_severity", incident=incident, severity=ctx.config.severity(new)))


def change_owner(ctx: Context, incident: Incident, user_token: str) -> Result:
    user = parse_user(user_token, OWNER_USAGE)
    require_open(incident, "re-assigned")
    require_owner_or_commander(ctx, incident, "/incident owner")
    if user == incident.owner:
        return Result(reply=reply("incident.already_owner", incident=incident, user=user))
    before = incident.owner
    incident.owner = user
    ctx.session.add(incident)
    record(ctx, "incident.owner_changed", incident_id=incident.id, number=incident.number, before=before, after=user)
    thread(ctx, incident, "incident_owner", "incident.owner_changed", before=before)
    refresh_message(ctx, incident)
    from commands.incident_channels import invite

    invite(ctx, incident, user)  # into the incident's channel, if it has one
    return Result(reply=reply("incident.now_owner", incident=incident, user=user))


def list_open(ctx: Context) -> Result:
    incidents = ctx.session.exec(
        select(Incident).where(Incident.launch_id == ctx.launch.id, Incident.status.in_(OPEN))  # type: ignore[attr-defined]
        .order_by(Incident.severity, Incident.number)
    ).all()
    return Result(reply=render("incident_list.j2", incidents=incidents, severities=ctx.config.severities,
                               now=ctx.now, tz=ctx.tz))


def show(ctx: Context, incident: Incident) -> Result:
    from db.models import AuditEvent

    events = ctx.session.exec(
        select(AuditEvent).where(AuditEvent.incident_id == incident.id).order_by(AuditEvent.ts, AuditEvent.id)
    ).all()
    return Result(reply=render("incident_show.j2", incident=incident, events=events,
                               severity=ctx.config.severity(incident.severity), now=ctx.now, tz=ctx.tz))


def declare_modal(ctx: Context) -> Result:
    return Result(modal=declaration_modal(ctx.config))


def declaration_modal(config: Config, summary: str = "", link: str | None = None) -> dict[str, Any]:
    """The declare form; from a message (the declare_incident shortcut) with its text as the summary and,
    once Slack gave it, the link to it (a permalink, kept in private_metadata: the incident's `source`)."""
    from commands.render import render_blocks

    link = link.split("?", 1)[0] if link else None
    return render_blocks("incident_declare_modal.json.j2", severities=config.severities,
                         summary=Markup(summary.strip()[:MAX_SUMMARY]),  # plain text: shown as it was written
                         link=Markup(link) if link and PERMALINK.match(link) else None)[0]


def message_source(link: str | None) -> str | None:
    """The permalink a declaration from a message keeps, if it is one (nothing else is stored)."""
    return link if link and len(link) <= 200 and PERMALINK.match(link) else None


@slash("/incident", usage=USAGE, summary="declare and work incidents (sev1-sev4)")
def incident_command(ctx: Context, text: str) -> Result:
    words = text.split(None, 1)
    if not words:
        return declare_modal(ctx)
    verb, rest = words[0].lower(), (words[1] if len(words) > 1 else "").strip()
    if parse_severity(verb):
        incident = declare(ctx, parse_declaration(verb, rest))
        return Result(reply=reply("incident.declared", incident=incident))
    if verb == "list" and not rest:
        return list_open(ctx)
    handlers = {
        "ack": lambda inc, arg: acknowledge(ctx, inc),
        "update": lambda inc, arg: add_update(ctx, inc, arg),
        "resolve": lambda inc, arg: resolve(ctx, inc, arg),
        "sev": lambda inc, arg: change_severity(ctx, inc, arg),
        "owner": lambda inc, arg: change_owner(ctx, inc, arg),
        "show": lambda inc, arg: show(ctx, inc),
        "page": lambda inc, arg: page_command(ctx, inc, arg),
    }
    if verb not in handlers:
        raise CommandError(reply("incident.not_a_subcommand", word=verb), USAGE)
    id_token, _, arg = rest.partition(" ")
    if not id_token:
        raise CommandError(reply("incident.needs_id", verb=verb), USAGE)
    arg = arg.strip()
    if verb in ("ack", "show") and arg:
        raise CommandError(reply("incident.only_an_id", verb=verb), USAGE)
    if verb == "update" and not arg:
        raise CommandError(reply("incident.update_needs_text"), UPDATE_USAGE)
    if verb in ("sev", "owner") and not arg:
        raise CommandError(reply("incident.needs_value", verb=verb), USAGE)
    if verb == "owner":  # check the whole command before looking anything up
        parse_user(arg, OWNER_USAGE)
    if verb == "sev" and parse_severity(arg) is None:
        raise CommandError(reply("incident.not_a_severity", word=arg), SEV_USAGE)
    return handlers[verb](load(ctx, id_token, lock=verb != "show"), arg)


def page_command(ctx: Context, incident: Incident, role: str) -> Result:
    from commands.paging import page_now  # builds on this module

    return page_now(ctx, incident, role)


@action("incident_ack")
def ack_button(ctx: Context, value: str) -> Result:
    return acknowledge(ctx, load(ctx, value))


@action("incident_resolve")
def resolve_button(ctx: Context, value: str) -> Result:
    return resolve(ctx, load(ctx, value), "")


@view("incident_declare")
def declare_submitted(ctx: Context, values: dict[str, str]) -> Result:
    severity = parse_severity(values.get("severity", ""))
    decl = Declaration(severity=severity or "", summary=values.get("summary", "").strip(),
                       impact=values.get("impact", "").strip(), workaround=values.get("workaround", "").strip(),
                       source=message_source(values.get("source")))
    if severity is None:
        return Result(view_errors={"severity": reply("incident.choose_a_severity")})
    try:
        decl = validated(decl)
    except CommandError as exc:
        field = "summary" if "summary" in exc.message else ("impact" if "impact" in exc.message else "workaround")
        return Result(view_errors={field: exc.message})
    incident = declare(ctx, decl)
    return Result(reply=reply("incident.declared_from_form", incident=incident))
