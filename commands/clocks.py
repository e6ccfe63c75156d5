"""Arming and cancelling an incident's clocks (the due work itself is in commands/escalation.py).

An incident has at most one live `escalation` Timer: armed (due_at set) while its
deadline runs, or dormant (due_at null, delay_s set) while the ping that starts
the next deadline waits in the outbox; the outbox arms it when the ping is posted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from commands.context import Context
from db.models import Incident, OutboxMessage, Timer

PLAN_WITHIN = timedelta(minutes=15)  # seed 000 §5: no Critical open 15 minutes without a plan


def arm_incident_clocks(ctx: Context, incident: Incident) -> None:
    """At declaration: the escalation clock of its severity, and for a Critical the plan check
    (a new incident has no clocks yet, so nothing is looked up first)."""
    severity = ctx.config.severity(incident.severity)
    if isinstance(severity.ack_within, timedelta):
        add_timer(ctx, incident, "escalation", ctx.now + severity.ack_within,
                  {"level": 1, "severity": incident.severity})
    if incident.severity == "sev1":
        add_timer(ctx, incident, "plan_check", ctx.now + PLAN_WITHIN, {})


def add_timer(ctx: Context, incident: Incident, kind: str, due_at: datetime, payload: dict[str, Any]) -> None:
    assert incident.id is not None and ctx.launch.id is not None
    ctx.session.add(Timer(launch_id=ctx.launch.id, kind=kind, subject_id=incident.id, due_at=due_at,
                          created_at=ctx.now, payload=payload))


def arm_plan_check(ctx: Context, incident: Incident) -> None:
    """A Critical gets one plan check, 15 minutes after it became Critical (unless an update came first)."""
    if incident.last_update_at is not None or pending_timers(ctx, incident, "plan_check"):
        return
    done = ctx.session.exec(select(Timer).where(
        Timer.subject_id == incident.id, Timer.kind == "plan_check", Timer.done_at.is_not(None))).all()  # type: ignore[union-attr]
    if any(t.payload.get("pinged") for t in done):  # it pinged once already: once is the rule
        return
    add_timer(ctx, incident, "plan_check", ctx.now + PLAN_WITHIN, {})


def pending_timers(ctx: Context, incident: Incident, *kinds: str) -> list[Timer]:
    """Live timers of the incident, armed or dormant."""
    return list(ctx.session.exec(
        select(Timer).where(Timer.subject_id == incident.id, Timer.kind.in_(kinds),  # type: ignore[attr-defined]
                            Timer.done_at.is_(None))  # type: ignore[union-attr]
        .order_by(Timer.id)
    ).all())


def cancel_incident_clocks(ctx: Context, incident: Incident, *kinds: str, why: str) -> int:
    """Stop the incident's live clocks (acknowledged, resolved, re-armed), dormant ones included:
    a cancelled dormant timer is never armed by the outbox (it arms only timers not done)."""
    timers = pending_timers(ctx, incident, *(kinds or ("escalation", "plan_check")))
    for timer in timers:
        timer.done_at = ctx.now
        timer.payload = {**timer.payload, "cancelled": why}
        ctx.session.add(timer)
    if why in ("acknowledged", "resolved"):
        withdraw_queued_pings(ctx, incident, [t.id for t in timers if t.id is not None], why)
    return len(timers)


def withdraw_queued_pings(ctx: Context, incident: Incident, timer_ids: list[int], why: str) -> None:
    """Escalation pings still waiting in the outbox (Slack slow or down) are not sent once the
    incident is acknowledged: a stale "escalating to …" would page someone for nothing.
    A ping already being sent (claimed) goes out."""
    ctx.session.execute(
        update(OutboxMessage).where(
            OutboxMessage.status == "pending", OutboxMessage.claimed_until.is_(None),  # type: ignore[union-attr]
            OutboxMessage.uncertain == False,  # noqa: E712  (a timed-out send may have landed: it stays)
            OutboxMessage.kind == "incident.escalation",
            (OutboxMessage.thread_ref == f"incident:{incident.id}")
            | OutboxMessage.arms_timer_id.in_(timer_ids or [-1]),  # type: ignore[union-attr]
        ).values(status="withdrawn", error=f"incident {why} before delivery")
    )


def rearm_escalation(ctx: Context, incident: Incident) -> None:
    """Severity changed: the clock restarts from its level with the new deadline, the stricter of the two.

    The stricter one is the earlier of the pending deadline and now + the new
    severity's ack_within. A dormant timer (its ping not posted yet) has no
    deadline: the new one counts from now. A severity whose ack_within is
    `next_checkpoint` (or none) has no timer: /checkpoint escalates it.
    """
    severity = ctx.config.severity(incident.severity)
    pending = pending_timers(ctx, incident, "escalation")
    current_due = min((t.due_at for t in pending if t.due_at is not None), default=None)
    level = int(pending[0].payload.get("level", 1)) if pending else incident.escalation_level + 1
    cancel_incident_clocks(ctx, incident, "escalation", why="severity changed")
    if incident.status != "open" or incident.acknowledged_at is not None:
        return
    if not isinstance(severity.ack_within, timedelta):
        return
    due = ctx.now + severity.ack_within
    if current_due is not None and current_due < due:
        due = current_due
    add_timer(ctx, incident, "escalation", due, {"level": max(level, 1), "severity": incident.severity})


def severity_changed(ctx: Context, incident: Incident) -> None:
    """Re-arm the escalation (while unacknowledged); a new Critical gets its plan check."""
    if incident.acknowledged_at is None:
        rearm_escalation(ctx, incident)
    if incident.severity == "sev1" and incident.status != "resolved":
        arm_plan_check(ctx, incident)
