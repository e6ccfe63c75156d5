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
    if message.method == "views.publish":  # one person's App Home missed an update: not the war room's business
        log.error("App Home not published", extra={"outbox_id": message.id, "error": message.error})
        return
    if any(e.payload.get("channel") == message.channel and e.payload.get("error") == message.error for e in earlier):
        return
    text = render("outbox_undeliverable.j2", message=message)
    hold_channel(session.connection(), launch.war_room)
    session.add(OutboxMessage(launch_id=launch.id, kind="outbox.undeliverable", channel=launch.war_room,
                              payload={"text": text}, created_at=now))


def report_unconfirmed(session: Session, message: OutboxMessage, now: datetime, *, resent: bool, why: str) -> None:
    """An answer from Slack was lost and the bot cannot read the channel to see whether the message landed:
    kept on the audit trail, and told to the war room (`resent`: it was sent again once, urgent as it is)."""
    launch = session.get(Launch, message.launch_id) if message.launch_id else None
    session.add(AuditEvent(launch_id=message.launch_id, kind="outbox.unconfirmed", actor="warroom", ts=now,
                           payload={"outbox_id": message.id, "channel": message.channel, "error": why,
                                    "message_kind": message.kind, "resent": resent}))
    if launch is None or message.channel == launch.war_room:
        log.error("unconfirmed message to the war room", extra={"outbox_id": message.id, "error": why})
        return
    text = render("outbox_unconfirmed.j2", message=message, why=why, resent=resent)
    session.add(OutboxMessage(launch_id=launch.id, kind="outbox.unconfirmed", channel=launch.war_room,
                              payload={"text": text}, created_at=now))


def report_cannot_join(session: Session, war_room: str, refused: dict[str, str], now: datetime) -> None:
    """At start-up the bot could not join channels it posts to (private ones must invite it): tell the war room."""
    launch = session.exec(select(Launch).where(Launch.war_room == war_room).order_by(Launch.id)).first()
    if launch is None:
        return
    session.add(AuditEvent(launch_id=launch.id, kind="outbox.cannot_join", actor="warroom", ts=now,
                           payload={"channels": refused}))
    text = render("outbox_cannot_join.j2", refused=refused)
    session.add(OutboxMessage(launch_id=launch.id, kind="outbox.cannot_join", channel=war_room,
                              payload={"text": text}, created_at=now))
