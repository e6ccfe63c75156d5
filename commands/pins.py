"""`:pushpin:` on a message in an incident's channel or thread adds that message to the incident's timeline
(INTERFACE "Into the timeline"): shown by `/incident show`, in the exports and the retrospective.

The reaction's event carries only the message's channel and ts, so its text is read from Slack first,
through the outbox (conversations.history in the incident's channel, conversations.replies in the war
room, where the thread it is in says which incident it belongs to); the answer arms an `incident_pin`
Timer, whose handler records the pin. Pinning the same message twice adds it once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from commands.context import Context, Result, queue, record
from commands.registry import timer
from db.channels import IncidentChannel
from db.models import AuditEvent, Incident, MessageRef, Timer

PIN = "incident_pin"
PINNED = "incident.pinned"
MESSAGE_TS = re.compile(r"^\d{1,12}\.\d{1,8}\Z")
MAX_TEXT = 2000  # of a pinned message kept in the timeline
_INCIDENT_REF = re.compile(r"^incident:(\d+)\Z")  # the war-room notification, the parent of the incident's thread


def pin_requested(ctx: Context, channel: str, ts: str) -> Result:
    """Someone pinned the message `ts` of `channel`: read it, if it may belong to an incident."""
    if not MESSAGE_TS.match(ts or ""):
        return Result()
    room = ctx.session.exec(select(IncidentChannel).where(IncidentChannel.launch_id == ctx.launch.id,
                                                          IncidentChannel.channel_id == channel)).first()
    if room is not None:
        _read(ctx, room.incident_id, channel, ts, "conversations.history")
    elif channel == ctx.launch.war_room:  # which incident's thread (if any) the answer tells
        _read(ctx, None, channel, ts, "conversations.replies")
    return Result()


def _read(ctx: Context, incident_id: int | None, channel: str, ts: str, method: str) -> None:
    if incident_id is not None and _pinned(ctx, incident_id, channel, ts):
        return
    payload: dict[str, Any] = ({"channel": channel, "latest": ts, "oldest": ts, "inclusive": True, "limit": 1}
                               if method == "conversations.history" else {"channel": channel, "ts": ts, "limit": 200})
    armed = Timer(launch_id=ctx.launch.id, kind=PIN, subject_id=incident_id, due_at=None, delay_s=0,
                  created_at=ctx.now, payload={"channel": channel, "ts": ts, "by": ctx.user, "method": method})
    ctx.session.add(armed)
    ctx.session.flush()
    queue(ctx, channel, kind="incident.pin_read", method=method, payload=payload, arms_timer_id=armed.id)


def _pinned(ctx: Context, incident_id: int, channel: str, ts: str) -> bool:
    events = ctx.session.exec(select(AuditEvent).where(AuditEvent.incident_id == incident_id,
                                                       AuditEvent.kind == PINNED)).all()
    return any(e.payload.get("channel") == channel and e.payload.get("message_ts") == ts for e in events)


def _incident_of_thread(ctx: Context, channel: str, thread_ts: str) -> int | None:
    """The incident whose war-room notification is the parent of the thread `thread_ts`."""
    refs = ctx.session.exec(select(MessageRef).where(MessageRef.channel == channel, MessageRef.ts == thread_ts)).all()
    for ref in refs:
        if (match := _INCIDENT_REF.match(ref.ref)) and ctx.session.get(Incident, int(match[1])) is not None:
            incident = ctx.session.get(Incident, int(match[1]))
            if incident is not None and incident.launch_id == ctx.launch.id:
                return incident.id
    return None


@timer(PIN, subject=Incident)
def pin_read(ctx: Context, armed: Timer) -> None:
    """Slack answered what the pinned message says: into the incident's timeline."""
    p = armed.payload
    answer = p.get("answer") or {}
    channel, ts = str(p.get("channel")), str(p.get("ts"))
    found = answer.get("message")
    if not answer.get("ok") or not isinstance(found, dict):
        if answer.get("ok") and p.get("method") == "conversations.history" and armed.subject_id is not None:
            _read(ctx, armed.subject_id, channel, ts, "conversations.replies")  # a reply in one of its threads
        elif not answer.get("ok"):
            record(ctx, "incident.pin_unread", incident_id=armed.subject_id, channel=channel, message_ts=ts,
                   error=str(answer.get("error"))[:80], actor=str(p.get("by")))
        return
    incident_id = armed.subject_id or _incident_of_thread(ctx, channel, str(found.get("thread_ts") or found.get("ts")))
    if incident_id is None or _pinned(ctx, incident_id, channel, ts):
        return
    said_at = datetime.fromtimestamp(float(ts), UTC).isoformat()
    record(ctx, PINNED, incident_id=incident_id, actor=str(p.get("by")), text=str(found.get("text") or "")[:MAX_TEXT],
           author=found.get("user"), said_at=said_at, channel=channel, message_ts=ts)
