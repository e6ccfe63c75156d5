"""`/checkpoint [note]` (commander): the summary read aloud at T+1h and T+4h, and its decision buttons.

The summary: open incidents by severity with age and owner; incidents resolved since the last checkpoint
with their time to acknowledge and resolve; the latest probe figures against their thresholds
(ProbeResult rows, written by the probes); decisions since the last checkpoint. Incidents whose severity
waits for `next_checkpoint` and are still unacknowledged are escalated here.

The buttons (`checkpoint_decision`: continue, widen, hold, rollback) carry only the choice, so the
checkpoint is the one whose message was clicked (its MessageRef), or the newest when the click comes
from somewhere that has no message (the shell). Only the newest checkpoint can be decided, once, by the
commander: a click on an older one, a second click, or anyone else's click changes nothing and says why.
`rollback` also opens the rollback confirmation (commands/rollback.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlmodel import select

from commands.authority import locked_launch
from commands.clicks import clicked_id
from commands.config_types import SEVERITY_KEYS
from commands.context import Context, Result, post, record, role_holder
from commands.decision import decisions_after, last_decision_id, log_decision
from commands.defaults import NEXT_CHECKPOINT
from commands.errors import CommandError
from commands.readiness import before_t0_summary
from commands.registry import action, slash
from commands.render import reply
from commands.roles import COMMANDER, require_commander
from commands.rollback import request_rollback
from commands.rollout import advance, figures
from db.models import AuditEvent, Checkpoint, Incident, OutboxMessage, ProbeResult

USAGE = reply("checkpoint.usage")
MAX_NOTE = 500
CHOICES = ("continue", "widen", "hold", "rollback")
OPEN = ("open", "acknowledged")


def checkpoint_ref(checkpoint: Checkpoint) -> str:
    return f"checkpoint:{checkpoint.id}"


def latest_checkpoint(ctx: Context, *, lock: bool = False) -> Checkpoint | None:
    query = select(Checkpoint).where(Checkpoint.launch_id == ctx.launch.id).order_by(Checkpoint.id.desc())  # type: ignore[union-attr]
    return ctx.session.exec(query.with_for_update(key_share=True) if lock else query).first()


def summary(ctx: Context, since: datetime | None, decisions_after_id: int) -> dict[str, Any]:
    """What the checkpoint reports, as values for its template."""
    launch_id = ctx.launch.id
    open_incidents = ctx.session.exec(
        select(Incident).where(Incident.launch_id == launch_id, Incident.status.in_(OPEN))  # type: ignore[attr-defined]
        .order_by(Incident.number)).all()
    by_severity = [(ctx.config.severity(key), [i for i in open_incidents if i.severity == key])
                   for key in SEVERITY_KEYS]
    resolved_query = select(Incident).where(Incident.launch_id == launch_id, Incident.status == "resolved")
    if since is not None:
        resolved_query = resolved_query.where(Incident.resolved_at > since)  # type: ignore[operator]
    resolved = ctx.session.exec(resolved_query.order_by(Incident.resolved_at, Incident.number)).all()  # type: ignore[arg-type]
    return {
        "open_count": len(open_incidents),
        "by_severity": [(sev, items) for sev, items in by_severity if items],
        "resolved": resolved,
        "probes": probe_figures(ctx),
        "metrics": figures(ctx),  # readings against the rollout's gates (commands/rollout.py)
        "decisions": decisions_after(ctx, decisions_after_id),
        "since": since,
        "readiness": before_t0_summary(ctx),  # gates not ready, until T0
    }


def probe_figures(ctx: Context) -> list[dict[str, Any]]:
    """The newest reading of each configured probe, judged against its threshold."""
    rows = []
    for probe in ctx.config.probes:
        latest = ctx.session.exec(
            select(ProbeResult).where(ProbeResult.launch_id == ctx.launch.id, ProbeResult.probe == probe.name)
            .order_by(ProbeResult.checked_at.desc(), ProbeResult.id.desc())  # type: ignore[union-attr]
        ).first()
        if latest is None:
            verdict = "none"
        elif not latest.ok:
            verdict = "failed"
        elif probe.threshold_ms is not None and latest.latency_ms is not None and latest.latency_ms > probe.threshold_ms:
            verdict = "over"
        else:
            verdict = "ok"
        rows.append({"probe": probe, "result": latest, "verdict": verdict})
    return rows


def previous_decision_mark(ctx: Context) -> int:
    """The newest decision id the previous checkpoint reported (decisions since it are those after)."""
    event = ctx.session.exec(
        select(AuditEvent).where(AuditEvent.launch_id == ctx.launch.id, AuditEvent.kind == "checkpoint.posted")
        .order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
    return int(event.payload.get("last_decision_id") or 0) if event else 0


def waiting_for_checkpoint(ctx: Context) -> list[Incident]:
    keys = [k for k, sev in ctx.config.severities.items() if sev.ack_within == NEXT_CHECKPOINT]
    if not keys:
        return []
    return list(ctx.session.exec(
        select(Incident).where(Incident.launch_id == ctx.launch.id, Incident.status == "open",
                               Incident.acknowledged_at.is_(None), Incident.severity.in_(keys))  # type: ignore[union-attr, attr-defined]
        .order_by(Incident.number).with_for_update(key_share=True)).all())


def escalator() -> Callable[[Context, Incident], Any]:
    """The timers family's `commands.escalation.escalate_at_checkpoint(ctx, incident)` when it exists;
    until then a ping here that follows the same contract (INC-<n>, "escalat", the holder's mention)."""
    try:
        from commands import escalation  # type: ignore[attr-defined]
    except ImportError:
        return ping_at_checkpoint
    return getattr(escalation, "escalate_at_checkpoint", ping_at_checkpoint)


def ping_at_checkpoint(ctx: Context, incident: Incident) -> None:
    severity = ctx.config.severity(incident.severity)
    chain = severity.escalate_to or (COMMANDER,)
    role = chain[min(incident.escalation_level, len(chain) - 1)]
    holder = role_holder(ctx.session, ctx.launch.id, role)
    incident.escalation_level += 1
    incident.escalations += 1
    ctx.session.add(incident)
    record(ctx, "incident.escalated", incident_id=incident.id, number=incident.number, level=incident.escalation_level,
           role=role, to=holder, reason=NEXT_CHECKPOINT)
    values = {"incident": incident, "severity": severity, "role": role, "holder": holder}
    post(ctx, ctx.launch.war_room, "checkpoint_escalation", kind="incident.escalated",
         thread_ref=f"incident:{incident.id}", urgent=True, **values)
    post(ctx, ctx.launch.war_room, "checkpoint_escalation", kind="incident.escalated", urgent=True, **values)


@slash("/checkpoint", usage=USAGE, summary="post the checkpoint summary with decision buttons (commander)")
def checkpoint_command(ctx: Context, text: str) -> Result:
    require_commander(ctx, "/checkpoint")
    note = " ".join(text.split())
    if len(note) > MAX_NOTE:
        raise CommandError(reply("checkpoint.note_too_long", length=len(note), limit=MAX_NOTE), USAGE)
    locked_launch(ctx)
    previous = latest_checkpoint(ctx)
    since = previous.created_at if previous else None
    checkpoint = Checkpoint(launch_id=ctx.launch.id, note=note, created_by=ctx.user, created_at=ctx.now)
    ctx.session.add(checkpoint)
    ctx.session.flush()
    escalate = escalator()
    waiting = waiting_for_checkpoint(ctx)
    for incident in waiting:
        escalate(ctx, incident)
    values = summary(ctx, since, previous_decision_mark(ctx))
    record(ctx, "checkpoint.posted", checkpoint_id=checkpoint.id, note=note, open=values["open_count"],
           resolved=[i.number for i in values["resolved"]], escalated=[i.number for i in waiting],
           last_decision_id=last_decision_id(ctx))
    post(ctx, ctx.launch.war_room, "checkpoint", kind="checkpoint", ref=checkpoint_ref(checkpoint),
         checkpoint=checkpoint, escalated=waiting, **values)
    return Result(reply=reply("checkpoint.posted", escalated=waiting))


def clicked_checkpoint(ctx: Context) -> Checkpoint:
    checkpoint_id = clicked_id(ctx, "checkpoint")
    if checkpoint_id is None:
        checkpoint = latest_checkpoint(ctx, lock=True)
    else:
        checkpoint = ctx.session.exec(select(Checkpoint).where(
            Checkpoint.id == checkpoint_id, Checkpoint.launch_id == ctx.launch.id).with_for_update(key_share=True)).first()
    if checkpoint is None:
        raise CommandError(reply("checkpoint.none_to_decide"))
    return checkpoint


@action("checkpoint_decision")
def decision_button(ctx: Context, value: str) -> Result:
    choice = value.strip().lower()
    if choice not in CHOICES:
        raise CommandError(reply("common.unknown_button_value"))
    require_commander(ctx, "checkpoint decision")
    checkpoint = clicked_checkpoint(ctx)
    if checkpoint.choice is not None:
        return Result(reply=reply("checkpoint.already_decided", checkpoint=checkpoint, tz=ctx.tz))
    newest = latest_checkpoint(ctx)
    if newest is not None and newest.id != checkpoint.id:
        raise CommandError(reply("checkpoint.stale", checkpoint=checkpoint, newest=newest, tz=ctx.tz))
    if choice == "widen" and ctx.config.rollout.phases:  # an advance: refused, deciding nothing, until the gates held
        advance(ctx, source="checkpoint")
    checkpoint.choice = choice
    checkpoint.decided_by = ctx.user
    checkpoint.decided_at = ctx.now
    ctx.session.add(checkpoint)
    log_decision(ctx, "checkpoint", choice, checkpoint_id=checkpoint.id, choice=choice, note=checkpoint.note)
    record(ctx, "checkpoint.decided", checkpoint_id=checkpoint.id, choice=choice)
    original = original_text(ctx, checkpoint)
    post(ctx, ctx.launch.war_room, "checkpoint_decided", kind="checkpoint.message_update",
         update_ref=checkpoint_ref(checkpoint), checkpoint=checkpoint, original=original)
    post(ctx, ctx.launch.war_room, "checkpoint_decision", kind="checkpoint.decision", checkpoint=checkpoint)
    if choice != "rollback":
        return Result(reply=reply("checkpoint.decided", checkpoint=checkpoint))
    rollback, created = request_rollback(ctx, rollback_reason(ctx, checkpoint), source="checkpoint")
    if created:
        return Result(reply=reply("rollback.requested", needed=ctx.config.rollback_approvals))
    return Result(reply=reply("rollback.exists", rollback=rollback, tz=ctx.tz))


def rollback_reason(ctx: Context, checkpoint: Checkpoint) -> str:
    """Stored as the rollback's reason (data, escaped wherever it is shown)."""
    assert checkpoint.created_at is not None
    at = checkpoint.created_at.astimezone(ZoneInfo(ctx.tz)).strftime("%H:%M")
    return f"the checkpoint decision at {at}" + (f" ({checkpoint.note})" if checkpoint.note else "")


def original_text(ctx: Context, checkpoint: Checkpoint) -> Markup:
    """The summary as it was posted (already rendered and escaped), for the decided version of the message."""
    message = ctx.session.exec(select(OutboxMessage).where(OutboxMessage.ref == checkpoint_ref(checkpoint))).first()
    text = str((message.payload if message else {}).get("text") or "")
    return Markup(text.removeprefix("[REHEARSAL] ").rsplit("\nDecide:", 1)[0])
