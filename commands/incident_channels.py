"""Incident channels (INTERFACE "Beyond the war room"): an incident of a listed severity gets its own channel.

The set-up is a chain of outbox rows; each arms a `channel_step` Timer that gets Slack's answer
(bot/outbox.py ANSWERED_METHODS) and queues the next step in the same transaction:
conversations.create, then the notification with its buttons posted there, the owner, the commander
and the chain's role holders invited (conversations.invite), and the war-room notification updated to
link it. A taken name is tried again with a suffix; a refusal (restricted_action, …) is said in the
incident's thread, and the incident goes on there. A restart resumes from the rows and timers left,
and a create whose answer was lost is looked up before it is sent again (bot/transport.py): never a
second channel. `archive_after` the resolution a `channel_archive` Timer queues conversations.archive.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlmodel import select

from commands.context import Context, post, queue, record, role_holder
from commands.incident import incident_ref, incident_values, room_ref, thread
from commands.parse import USER_ID
from commands.registry import timer
from db.channels import IncidentChannel, room_of
from db.models import Incident, Timer

CREATES = "conversations.create"  # the pace key of the workspace's channel creations (no channel id has a dot)
MAX_NAME = 80  # Slack's limit for a channel name
MAX_ATTEMPTS = 5  # names tried (a suffix each time one is taken) before giving up
STEP = "channel_step"
ARCHIVE = "channel_archive"


def channel_name(prefix: str, number: int, summary: str, attempt: int = 1) -> str:
    """`<prefix><n>-<summary slug>` within Slack's rules (lowercase; letters, digits, - and _; at most
    80 characters), `-2`, `-3`, … on the attempts after a taken name."""
    ascii_summary = unicodedata.normalize("NFKD", summary).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9_]+", "-", ascii_summary)).strip("-_")
    suffix = f"-{attempt}" if attempt > 1 else ""
    base = f"{prefix}{number}" + (f"-{slug}" if slug else "")
    return base[: MAX_NAME - len(suffix)].rstrip("-_") + suffix


def open_channel(ctx: Context, incident: Incident) -> None:
    """A channel for the incident when its severity is listed and it has none yet (declared, or re-rated)."""
    settings = ctx.config.incident_channels
    if settings is None or incident.severity not in settings.severities or incident.status == "resolved":
        return
    if room_of(ctx.session, incident.id) is not None:
        return
    room = IncidentChannel(launch_id=ctx.launch.id, incident_id=incident.id, created_at=ctx.now,
                           name=channel_name(settings.prefix, incident.number, incident.summary))
    ctx.session.add(room)
    _create(ctx, incident, room)


def invitees(ctx: Context, incident: Incident) -> list[str]:
    """The owner, the commander and the holders of the roles the severity escalates to, each once."""
    roles = ("commander", *ctx.config.severity(incident.severity).escalate_to)
    people = [incident.owner, *(role_holder(ctx.session, ctx.launch.id, role) for role in roles)]
    return list(dict.fromkeys(p for p in people if p and USER_ID.match(p)))  # not "warroom" (a probe's)


def role_taken(ctx: Context, role: str, user: str) -> None:
    """A new holder of a role joins the open channels of the unresolved incidents whose chain includes it."""
    rooms = ctx.session.exec(select(IncidentChannel).where(
        IncidentChannel.launch_id == ctx.launch.id, IncidentChannel.status == "open")).all()
    for room in rooms:
        incident = ctx.session.get_one(Incident, room.incident_id)
        if incident.status != "resolved" and role in ("commander", *ctx.config.severity(incident.severity).escalate_to):
            invite(ctx, incident, user)


def invite(ctx: Context, incident: Incident, user: str) -> None:
    """A new owner joins the incident's channel (one still being created invites the owner of its time)."""
    room = room_of(ctx.session, incident.id)
    if room is not None and room.status == "open" and room.channel_id and USER_ID.match(user):
        _step(ctx, incident, room.channel_id, "conversations.invite", {"channel": room.channel_id, "users": user},
              "invite", user=user)


def archive_later(ctx: Context, incident: Incident) -> None:
    """The incident is resolved: its channel is archived `archive_after` from now."""
    room = room_of(ctx.session, incident.id)
    if room is not None and room.status == "open":  # one still being created is scheduled once it exists
        _schedule_archive(ctx, incident)


def _schedule_archive(ctx: Context, incident: Incident) -> None:
    settings = ctx.config.incident_channels
    if settings is not None:
        ctx.session.add(Timer(launch_id=ctx.launch.id, kind=ARCHIVE, subject_id=incident.id, created_at=ctx.now,
                              due_at=ctx.now + settings.archive_after, payload={}))


def _step(ctx: Context, incident: Incident, channel: str, method: str, payload: dict[str, Any], step: str,
          **about: Any) -> None:
    """One call to Slack through the outbox, whose answer arms a `channel_step` timer (the next step)."""
    armed = Timer(launch_id=ctx.launch.id, kind=STEP, subject_id=incident.id, due_at=None, delay_s=0,
                  created_at=ctx.now, payload={"step": step, **about})
    ctx.session.add(armed)
    ctx.session.flush()  # its id, for the row that arms it
    queue(ctx, channel, kind=f"incident.channel_{step}", method=method, payload=payload, arms_timer_id=armed.id,
          urgent=incident.severity in ("sev1", "sev2"))


def _create(ctx: Context, incident: Incident, room: IncidentChannel) -> None:
    _step(ctx, incident, CREATES, "conversations.create", {"name": room.name, "is_private": False}, "create",
          name=room.name)


@timer(STEP, subject=Incident)
def channel_step(ctx: Context, armed: Timer) -> None:
    """Slack answered one step of the set-up (or the archive): the next one, or what failed, in the war room."""
    incident = ctx.session.get(Incident, armed.subject_id)
    room = room_of(ctx.session, armed.subject_id)
    if incident is None or room is None:
        return
    answer = armed.payload.get("answer") or {}
    step = armed.payload.get("step")
    error = str(answer.get("error") or "no answer")[:80]
    if step == "create":
        _created(ctx, incident, room, answer, error)
    elif step == "invite" and not answer.get("ok"):
        record(ctx, "incident.channel_invite_failed", incident_id=incident.id, user=armed.payload.get("user"),
               error=error)
        thread(ctx, incident, "incident_channel_failed", "incident.channel_failed", step="invite",
               user=armed.payload.get("user"), error=error)
    elif step == "archive":
        if answer.get("ok"):
            room.status, room.archived_at = "archived", ctx.now
            record(ctx, "incident.channel_archived", incident_id=incident.id, channel=room.channel_id)
        else:
            record(ctx, "incident.channel_archive_failed", incident_id=incident.id, error=error)
            thread(ctx, incident, "incident_channel_failed", "incident.channel_failed", step="archive",
                   error=error)
        ctx.session.add(room)


def _created(ctx: Context, incident: Incident, room: IncidentChannel, answer: dict[str, Any], error: str) -> None:
    settings = ctx.config.incident_channels
    if answer.get("ok") and answer.get("ts"):
        room.channel_id, room.name, room.status = str(answer["ts"]), str(answer.get("name") or room.name), "open"
        ctx.session.add(room)
        record(ctx, "incident.channel_opened", incident_id=incident.id, channel=room.channel_id, name=room.name)
        post(ctx, room.channel_id, "incident", kind="incident.notification", ref=room_ref(incident),
             urgent=incident.severity in ("sev1", "sev2"), **incident_values(ctx, incident))
        for user in invitees(ctx, incident):
            invite(ctx, incident, user)
        # the war room's notification links the channel (the channel's own copy was just posted as it is)
        post(ctx, ctx.launch.war_room, "incident", kind="incident.message_update", update_ref=incident_ref(incident),
             **incident_values(ctx, incident))
        if room.attempt > 1 and settings is not None:
            thread(ctx, incident, "incident_channel_renamed", "incident.channel_renamed",
                   taken=channel_name(settings.prefix, incident.number, incident.summary))
        if incident.status == "resolved":
            _schedule_archive(ctx, incident)
        return
    if error == "name_taken" and room.attempt < MAX_ATTEMPTS and settings is not None:
        record(ctx, "incident.channel_name_taken", incident_id=incident.id, name=room.name)
        room.attempt += 1
        room.name = channel_name(settings.prefix, incident.number, incident.summary, room.attempt)
        ctx.session.add(room)
        _create(ctx, incident, room)
        return
    room.status, room.error = "failed", error
    ctx.session.add(room)
    record(ctx, "incident.channel_failed", incident_id=incident.id, name=room.name, error=error)
    thread(ctx, incident, "incident_channel_failed", "incident.channel_failed", step="create",
           error=error, broadcast=True)


@timer(ARCHIVE, subject=Incident)
def archive_due(ctx: Context, due: Timer) -> None:
    """`archive_after` the resolution: archive the incident's channel."""
    room = room_of(ctx.session, due.subject_id)
    incident = ctx.session.get(Incident, due.subject_id)
    if incident is None or room is None or room.status != "open" or room.channel_id is None:
        return
    _step(ctx, incident, room.channel_id, "conversations.archive", {"channel": room.channel_id}, "archive")
