"""`/decision <text>` and the decision log every family writes to (`log_decision`).

A decision is one Decision row (who, when, text, kind, and the incident it names) plus a
`decision.recorded` audit event, so it shows on the incident's timeline and in the export.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import select

from commands.context import Context, Result, post, record
from commands.errors import CommandError
from commands.registry import slash
from commands.render import reply
from db.models import Decision, Incident

USAGE = reply("decision.usage")
MAX_TEXT = 1000
INCIDENT_NAME = re.compile(r"\bINC-(\d{1,9})\b", re.IGNORECASE)


def log_decision(ctx: Context, kind: str, text: str, *, incident_id: int | None = None,
                 **payload: Any) -> Decision:
    """One entry of the decision log, in the caller's transaction."""
    decision = Decision(launch_id=ctx.launch.id, kind=kind, text=text, actor=ctx.user, incident_id=incident_id,
                        created_at=ctx.now, payload=payload)
    ctx.session.add(decision)
    ctx.session.flush()
    record(ctx, "decision.recorded", incident_id=incident_id, decision_id=decision.id, decision_kind=kind,
           text=text, **payload)
    return decision


def decisions_after(ctx: Context, last_id: int) -> list[Decision]:
    """Decisions logged after the one with id `last_id` (0: all), in order."""
    return list(ctx.session.exec(
        select(Decision).where(Decision.launch_id == ctx.launch.id, Decision.id > last_id)  # type: ignore[operator]
        .order_by(Decision.id)).all())


def last_decision_id(ctx: Context) -> int:
    row = ctx.session.exec(select(Decision.id).where(Decision.launch_id == ctx.launch.id)
                           .order_by(Decision.id.desc())).first()  # type: ignore[union-attr]
    return int(row or 0)


def named_incidents(ctx: Context, text: str) -> list[Incident]:
    """The incidents of this launch the text names (INC-<n>), in order; an unknown one is an error."""
    found: list[Incident] = []
    for number in dict.fromkeys(int(n) for n in INCIDENT_NAME.findall(text)):
        incident = ctx.session.exec(
            select(Incident).where(Incident.launch_id == ctx.launch.id, Incident.number == number)).first()
        if incident is None:
            raise CommandError(reply("decision.unknown_incident", number=number, launch=ctx.launch), USAGE)
        found.append(incident)
    return found


@slash("/decision", usage=USAGE, summary="record a decision in the decision log (anyone)")
def decision_command(ctx: Context, text: str) -> Result:
    text = text.strip()
    if not text:
        raise CommandError(reply("decision.needs_text"), USAGE)
    if len(text) > MAX_TEXT:
        raise CommandError(reply("decision.too_long", length=len(text), limit=MAX_TEXT), USAGE)
    incidents = named_incidents(ctx, text)
    first = incidents[0] if incidents else None
    decision = log_decision(ctx, "decision", text, incident_id=first.id if first else None,
                            incidents=[i.number for i in incidents])
    post(ctx, ctx.launch.war_room, "decision_recorded", kind="decision.recorded", decision=decision,
         incidents=incidents)
    for incident in incidents:
        post(ctx, ctx.launch.war_room, "decision_recorded", kind="decision.recorded",
             thread_ref=f"incident:{incident.id}", decision=decision, incidents=incidents)
    return Result(reply=reply("decision.recorded", decision=decision, incidents=incidents, tz=ctx.tz))
