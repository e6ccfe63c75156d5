"""The due work of an incident's clocks: escalation pings up its severity's chain, and the Critical plan check.

Declaration mentions the holder of the chain's first role; each `ack_within`
that passes without an acknowledgement escalates to the next role. A role with
no holder is skipped (and the ping says so); when the chain is exhausted its
last role is pinged again at the same interval. The next deadline counts from
when the ping was actually posted: the next Timer is created dormant and the
outbox arms it when the ping lands (after a restart too).

The ping is one message: a reply in the incident's thread that Slack also shows in
the war-room channel (reply_broadcast). When the incident's own message never
landed there is no thread, and the outbox posts it in the channel itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import select

from commands.context import Context, held_roles, post, record, role_holder
from commands.defaults import NEXT_CHECKPOINT
from commands.incident import incident_ref
from commands.paging import page_on_escalation
from commands.registry import timer
from db.models import Incident, Timer

LATE_AFTER = timedelta(seconds=5)  # a ping later than this says how late (the bot was down)


@dataclass
class Target:
    role: str | None
    user: str | None
    index: int  # position in the chain that was pinged (len(chain) when exhausted)
    exhausted: bool
    skipped: list[str] = field(default_factory=list)


def escalation_target(ctx: Context, chain: tuple[str, ...], level: int) -> Target:
    """The first role at or after `level` that has a holder; past the end, the chain's last held role."""
    assert ctx.launch.id is not None
    held = held_roles(ctx.session, ctx.launch.id)
    skipped: list[str] = []
    for index in range(max(level, 0), len(chain)):
        holder = held.get(chain[index])
        if holder:
            return Target(chain[index], holder, index, False, skipped)
        skipped.append(chain[index])
    for index in reversed(range(len(chain))):
        holder = held.get(chain[index])
        if holder:
            return Target(chain[index], holder, len(chain), True, skipped)
        if chain[index] not in skipped:
            skipped.append(chain[index])
    return Target(None, None, len(chain), True, skipped)


def escalate(ctx: Context, incident: Incident, level: int, *, due_at: datetime | None = None,
             every: timedelta | None = None) -> Target:
    """Ping the next role for an unacknowledged incident; with `every`, arm the next level dormant."""
    severity = ctx.config.severity(incident.severity)
    target = escalation_target(ctx, severity.escalate_to, level)
    late = ctx.now - due_at if due_at is not None else timedelta(0)
    values = {
        "incident": incident, "severity": severity, "target": target, "chain": severity.escalate_to,
        "waited": ctx.now - incident.declared_at, "late": late if late > LATE_AFTER else None,
        "every": every, "checkpoint": every is None,
    }
    # the chain position pinged last (declaration pinged 0); the next level is the one after it
    pinged = target.index if not target.exhausted else max(len(severity.escalate_to) - 1, 0)
    next_timer_id = None
    if every is not None:
        assert ctx.launch.id is not None and incident.id is not None
        # the next level, dormant (no due_at) until the outbox posts this ping
        next_level = Timer(launch_id=ctx.launch.id, kind="escalation", subject_id=incident.id, due_at=None,
                           delay_s=every.total_seconds(), created_at=ctx.now,
                           payload={"level": pinged + 1, "severity": incident.severity})
        ctx.session.add(next_level)
        ctx.session.flush()  # its id: the ping's outbox row arms it when posted
        next_timer_id = next_level.id
    incident.escalation_level = pinged
    incident.escalations += 1
    ctx.session.add(incident)
    record(ctx, "incident.escalated", incident_id=incident.id, number=incident.number, level=incident.escalations,
           role=target.role, user=target.user, skipped=target.skipped, exhausted=target.exhausted,
           waited_s=values["waited"].total_seconds(), late_s=late.total_seconds(),
           next_timer_id=next_timer_id)
    # one message in the incident's thread and in the channel; the next level counts from when it lands
    post(ctx, ctx.launch.war_room, "escalation", kind="incident.escalation", arms_timer_id=next_timer_id,
         thread_ref=incident_ref(incident), broadcast=True, urgent=True, **values)
    page_on_escalation(ctx, incident, target.role)
    return target


def _still_waiting(incident: Incident | None) -> bool:
    return incident is not None and incident.status == "open" and incident.acknowledged_at is None


@timer("escalation", subject=Incident)
def escalation_due(ctx: Context, due: Timer) -> None:
    incident = ctx.session.get(Incident, due.subject_id)  # loaded and locked (FOR UPDATE) by the scheduler
    if not _still_waiting(incident):
        return
    assert incident is not None
    severity = ctx.config.severity(incident.severity)
    if not isinstance(severity.ack_within, timedelta):  # the config changed under a restart
        return
    escalate(ctx, incident, int(due.payload.get("level", 1)), due_at=due.due_at, every=severity.ack_within)


def escalate_waiting_for_checkpoint(ctx: Context) -> list[Incident]:
    """For /checkpoint: every unacknowledged incident whose severity waits for `next_checkpoint`
    escalates one level now (the next checkpoint is its next deadline). Returns those incidents."""
    waiting = ctx.session.exec(
        select(Incident).where(Incident.launch_id == ctx.launch.id, Incident.status == "open",
                               Incident.acknowledged_at.is_(None))  # type: ignore[union-attr]
        .order_by(Incident.number).with_for_update(key_share=True)
    ).all()
    escalated = []
    for incident in waiting:
        if ctx.config.severity(incident.severity).ack_within != NEXT_CHECKPOINT:
            continue
        escalate(ctx, incident, incident.escalation_level + 1)
        escalated.append(incident)
    return escalated


def escalate_at_checkpoint(ctx: Context, incident: Incident) -> Target:
    """/checkpoint's hook (commands/checkpoint.py): one incident waiting for `next_checkpoint` escalates
    one level up its chain now."""
    return escalate(ctx, incident, incident.escalation_level + 1)


@timer("plan_check", subject=Incident)
def plan_check_due(ctx: Context, due: Timer) -> None:
    """Seed §5: no Critical may stand open 15 minutes without a plan. Pings the commander once."""
    incident = ctx.session.get(Incident, due.subject_id)
    if incident is None or incident.status == "resolved" or incident.severity != "sev1":
        return
    if incident.last_update_at is not None:
        return
    commander = role_holder(ctx.session, ctx.launch.id, "commander")
    post(ctx, ctx.launch.war_room, "plan_check", kind="incident.plan_check", incident=incident,
         severity=ctx.config.severity(incident.severity), commander=commander,
         open_for=ctx.now - incident.declared_at)
    due.payload = {**due.payload, "pinged": True}
    ctx.session.add(due)
    record(ctx, "incident.plan_missing", incident_id=incident.id, number=incident.number, commander=commander,
           open_s=(ctx.now - incident.declared_at).total_seconds())
