"""Reading the record: the audit trail as NDJSON lines, the incidents as CSV.

Plain functions over a session (no Slack, no clock): the `/export` command and
`python -m bot export` both call them. The schema is documented in docs/audit.md;
its field names are stable.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from db.models import AuditEvent, Incident, Launch, OutboxMessage, RoleAssignment
from db.readiness import ActionItem, ReadinessItem

SCHEMA_VERSION = 1
CSV_FIELDS = ("id", "severity", "severity_name", "summary", "owner", "status", "declared", "acknowledged",
              "resolved", "time_to_acknowledge_s", "time_to_resolve_s", "escalations",
              # readiness gates and action items follow the incidents (their columns empty for an incident)
              "record", "due", "due_label", "critical", "done", "note", "changed_by")
# outbox payload keys that are message bodies too large (or too binary) for the trail
_BULKY = ("blocks", "content")


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with a Z, e.g. 2025-10-16T17:00:00.000000Z."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Line:
    """One event of the record, before it is written as JSON."""

    ts: datetime
    order: int  # launch first, then config roles, audit events, deliveries, at the same instant
    row_id: int
    fields: dict[str, Any]


def audit_lines(session: Session, launch: Launch) -> Iterator[dict[str, Any]]:
    """Every event of a launch's record, ordered by time: the launch itself, the roles it started
    with, every AuditEvent, and every outbox message (sent, failed or still pending)."""
    numbers = {i.id: i.number for i in session.exec(select(Incident).where(Incident.launch_id == launch.id)).all()}
    lines: list[Line] = []

    def add(ts: datetime, order: int, row_id: int, source: str, kind: str, actor: str,
            incident_id: int | None, payload: dict[str, Any]) -> None:
        number = numbers.get(incident_id) if incident_id is not None else None
        lines.append(Line(ts, order, row_id, {
            "ts": iso(ts), "launch": launch.name, "rehearsal": bool(launch.rehearsal), "source": source,
            "id": row_id, "kind": kind, "actor": actor, "incident": f"INC-{number}" if number else None,
            "payload": payload,
        }))

    assert launch.created_at is not None and launch.id is not None
    add(launch.created_at, 0, launch.id, "launch", "launch.created", "warroom", None, {
        "t0": iso(launch.t0), "timezone": launch.timezone, "war_room": launch.war_room,
        "heartbeat_every_s": launch.heartbeat_every_s})
    for role in session.exec(select(RoleAssignment).where(RoleAssignment.launch_id == launch.id,
                                                          RoleAssignment.assigned_by == "config")).all():
        assert role.assigned_at is not None and role.id is not None
        add(role.assigned_at, 1, role.id, "config", "role.configured", "config", None,
            {"role": role.role, "user": role.user_id})
    for event in session.exec(select(AuditEvent).where(AuditEvent.launch_id == launch.id)).all():
        assert event.ts is not None and event.id is not None
        add(event.ts, 2, event.id, "audit", event.kind, event.actor, event.incident_id, dict(event.payload))
    for message in session.exec(select(OutboxMessage).where(OutboxMessage.launch_id == launch.id)).all():
        assert message.created_at is not None and message.id is not None
        add(message.sent_at or message.created_at, 3, message.id, "outbox", f"outbox.{message.status}", "warroom",
            None, delivery(message))
    lines.sort(key=lambda line: (line.ts, line.order, line.row_id))
    for line in lines:
        yield line.fields


def delivery(message: OutboxMessage) -> dict[str, Any]:
    """What the trail keeps of one message to Slack: where, what, and how delivery went."""
    body = {k: v for k, v in message.payload.items() if k not in _BULKY}
    if "content" in message.payload:
        body["bytes"] = len(str(message.payload["content"]).encode())
    return {
        "message_kind": message.kind, "channel": message.channel, "method": message.method,
        "status": message.status, "attempts": message.attempts, "error": message.error,
        "queued_at": iso(message.created_at), "sent_at": iso(message.sent_at), "slack_ts": message.ts,
        "thread_ref": message.thread_ref, "update_ref": message.update_ref, **body,
    }


def ndjson(session: Session, launch: Launch) -> str:
    return "".join(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n" for line in audit_lines(session, launch))


def incidents_csv(session: Session, launch: Launch, severity_names: dict[str, str]) -> str:
    """One row per incident (the csv module quotes commas, quotes and newlines)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    incidents = session.exec(select(Incident).where(Incident.launch_id == launch.id).order_by(Incident.number)).all()
    for i in incidents:
        assert i.declared_at is not None
        writer.writerow([inert(cell) for cell in (
            f"INC-{i.number}", i.severity, severity_names.get(i.severity, i.severity), i.summary, i.owner or "",
            i.status, iso(i.declared_at), iso(i.acknowledged_at) or "", iso(i.resolved_at) or "",
            _seconds(i.acknowledged_at, i.declared_at), _seconds(i.resolved_at, i.declared_at), i.escalations,
            "incident", "", "", "", "", "", "",
        )])
    for row in owned_rows(session, launch):
        writer.writerow([inert(cell) for cell in row])
    return out.getvalue()


def owned_rows(session: Session, launch: Launch) -> Iterator[tuple[Any, ...]]:
    """The csv rows of the readiness gates (record `readiness`) and the action items (record `action`):
    id, text as summary, owner (a role or a user id), state as status, created as declared."""
    gates = session.exec(select(ReadinessItem).where(ReadinessItem.launch_id == launch.id)
                         .order_by(ReadinessItem.id)).all()  # type: ignore[arg-type]
    for g in gates:
        yield (g.key, "", "", g.text, g.owner, g.state, iso(g.created_at), "", "", "", "", "",
               "readiness", iso(g.due_at) or "", g.due_label or "", "true" if g.critical else "false",
               iso(g.ready_at) or "", g.note, g.changed_by or "")
    actions = session.exec(select(ActionItem).where(ActionItem.launch_id == launch.id)
                           .order_by(ActionItem.number)).all()
    for a in actions:
        yield (f"A-{a.number}", "", "", a.text, a.owner, a.state, iso(a.created_at), "", "", "", "", "",
               "action", iso(a.due_at) or "", a.due_label or "", "", iso(a.done_at) or "", a.note,
               a.done_by or a.created_by)


def inert(cell: Any) -> Any:
    """A cell a spreadsheet shows as text: one starting with `=`, `+`, `-`, `@`, a tab or a carriage
    return would run as a formula (`=HYPERLINK(…)`), so it gets a leading `'`."""
    return "'" + cell if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _seconds(end: datetime | None, start: datetime) -> str:
    return "" if end is None else str(int(round((end - start).total_seconds())))
