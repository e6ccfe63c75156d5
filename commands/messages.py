"""Messages about delivery itself: an undeliverable message is told to the war room once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session, select

from commands.render import render
from db.models import AuditEvent, Launch, OutboxMessage
from db.session import hold_channel

log = logging.getLogger("warroom.outbox")
REPORT_AGAIN_AFTER = timedelta(minutes=15)


def report_undeliverable(session: Session, message: OutboxMessage, now: datetime) -> None:
    """Keep the failure on the audit trail; tell the war room once per channel and error per 15 minutes."""
    launch = session.get(Launch, message.launch_id) if message.launch_id else None
    earlier = session.exec(
        select(AuditEvent).where(AuditEvent.launch_id == message.launch_id, AuditEvent.kind == "outbox.undeliverable",
                                 AuditEvent.ts > now - REPORT_AGAIN_AFTER)
    ).all()
    session.add(AuditEvent(launch_id=message.launch_id, kind="outbox.undeliverable", actor="warroom", ts=now,
                           payload={"outbox_id": message.id, "channel": message.channel, "error": message.error,
                                    "message_kind": message.kind}))
    if launch is None or message.channel == launch.war_room:
        log.error("undeliverable message to the war room", extra={"outbox_id": message.id, "channel": message.channel,
                                                                  "error": message.error})
        return
    if any(e.payload.get("channel") == message.channel and e.payload.get("error") == message.error for e in earlier):
        return
    text = render("outbox_undeliverable.j2", message=message)
    hold_channel(session.connection(), launch.war_room)
    session.add(OutboxMessage(launch_id=launch.id, kind="outbox.undeliverable", channel=launch.war_room,
                              payload={"text": text}, created_at=now))
