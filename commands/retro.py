"""The retrospective of seed 000 §9 (T+24h): what happened, from the record alone.

`retrospective(session, launch, config, now)` gathers the figures (plain data) and
renders `templates/files/retro.md` with the files environment (no Slack escaping).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from commands.config import Config
from commands.config_rollout import Condition, Trigger
from commands.context import roster
from commands.files import render_file
from db.models import (
    Activity,
    AuditEvent,
    Decision,
    Incident,
    Launch,
    OutboxMessage,
    Poll,
    ProbeResult,
    Rollback,
    RollbackStep,
    Vote,
)
from db.readiness import ActionItem, ReadinessItem
from db.rollout import MetricReading, RolloutPhase, TriggerFiring

DESCRIBE_KEYS = ("summary", "text", "note", "reason", "choice", "outcome", "label", "command", "after", "role")
POST_LAUNCH_CHECKLIST = (  # seed 000 §9, Post Launch (T+24h)
    "Final metrics compiled (usage, incidents, response times)",
    "Retrospective scheduled with cross-functional attendees",
    "Lessons learned captured in artifacts/pilot/<date>/retro.md",
)


@dataclass
class IncidentRow:
    number: int
    severity: str
    summary: str
    owner: str | None
    status: str
    declared_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    tta: timedelta | None
    ttr: timedelta | None
    escalations: int


@dataclass
class TimelineRow:
    ts: datetime
    kind: str
    actor: str
    incident: str
    text: str


@dataclass
class HeartbeatRow:
    ts: datetime
    open_incidents: int
    figures: dict[str, str]
    engagement: int


@dataclass
class PollRow:
    kind: str
    opened_by: str
    opened_at: datetime
    closed_at: datetime | None
    outcome: str | None
    votes: list[Vote]
    missing: list[str]


@dataclass
class MetricRow:
    """One metric source over the launch, against the gates and triggers that name it."""

    name: str
    readings: int
    failed: int
    low: float | None
    high: float | None
    last: float | None
    gates: list[tuple[Condition, str]]  # each gate on it, and its phase's name
    triggers: list[Trigger]


@dataclass
class Retro:
    launch: Launch
    tz: str
    generated_at: datetime
    incidents: list[IncidentRow] = field(default_factory=list)
    by_severity: dict[str, int] = field(default_factory=dict)
    mtta: timedelta | None = None
    mttr: timedelta | None = None
    timeline: list[TimelineRow] = field(default_factory=list)
    escalations: list[TimelineRow] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    heartbeats: list[HeartbeatRow] = field(default_factory=list)
    probe_summary: list[dict[str, Any]] = field(default_factory=list)
    polls: list[PollRow] = field(default_factory=list)
    rollbacks: list[tuple[Rollback, list[RollbackStep]]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    deliveries: dict[str, int] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)
    readiness: list[ReadinessItem] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    holders: dict[str, str | None] = field(default_factory=dict)  # role -> holder now (the owners' people)
    phases: list[RolloutPhase] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    triggers: list[tuple[TriggerFiring, Trigger | None]] = field(default_factory=list)  # None: no longer configured


def _mean(values: list[timedelta]) -> timedelta | None:
    return sum(values, timedelta(0)) / len(values) if values else None


def describe(event: AuditEvent) -> str:
    for key in DESCRIBE_KEYS:
        value = event.payload.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def gather(session: Session, launch: Launch, config: Config, now: datetime) -> Retro:
    assert launch.id is not None
    retro = Retro(launch=launch, tz=launch.timezone, generated_at=now)
    names = {key: sev.name for key, sev in config.severities.items()}
    incidents = session.exec(select(Incident).where(Incident.launch_id == launch.id).order_by(Incident.number)).all()
    numbers = {i.id: f"INC-{i.number}" for i in incidents}
    for i in incidents:
        assert i.declared_at is not None
        retro.incidents.append(IncidentRow(
            number=i.number, severity=names.get(i.severity, i.severity), summary=i.summary, owner=i.owner,
            status=i.status, declared_at=i.declared_at, acknowledged_at=i.acknowledged_at, resolved_at=i.resolved_at,
            tta=(i.acknowledged_at - i.declared_at) if i.acknowledged_at else None,
            ttr=(i.resolved_at - i.declared_at) if i.resolved_at else None, escalations=i.escalations))
    retro.by_severity = dict(Counter(row.severity for row in retro.incidents))
    retro.mtta = _mean([r.tta for r in retro.incidents if r.tta is not None])
    retro.mttr = _mean([r.ttr for r in retro.incidents if r.ttr is not None])

    events = session.exec(select(AuditEvent).where(AuditEvent.launch_id == launch.id)
                          .order_by(AuditEvent.ts, AuditEvent.id)).all()  # type: ignore[arg-type]
    for e in events:
        assert e.ts is not None
        row = TimelineRow(ts=e.ts, kind=e.kind, actor=e.actor, incident=numbers.get(e.incident_id, ""),
                          text=describe(e))
        retro.timeline.append(row)
        if "escalat" in e.kind:
            retro.escalations.append(row)
    retro.decisions = list(session.exec(select(Decision).where(Decision.launch_id == launch.id)
                                        .order_by(Decision.created_at, Decision.id)).all())  # type: ignore[arg-type]
    _heartbeats(session, launch, config, retro, incidents)
    _polls(session, launch, retro)
    for rollback in session.exec(select(Rollback).where(Rollback.launch_id == launch.id).order_by(Rollback.id)).all():
        steps = session.exec(select(RollbackStep).where(RollbackStep.rollback_id == rollback.id)
                             .order_by(RollbackStep.position)).all()
        retro.rollbacks.append((rollback, list(steps)))
    statuses = session.exec(select(OutboxMessage.status).where(OutboxMessage.launch_id == launch.id)).all()
    retro.deliveries = dict(Counter(statuses))
    retro.people = {}
    for role, user in roster(session, launch.id).items():
        if user:
            retro.people[user] = f"{retro.people[user]}, {role}" if user in retro.people else role
    retro.holders = roster(session, launch.id)
    retro.readiness = list(session.exec(select(ReadinessItem).where(ReadinessItem.launch_id == launch.id)
                                        .order_by(ReadinessItem.due_at, ReadinessItem.id)).all())  # type: ignore[arg-type]
    retro.action_items = list(session.exec(select(ActionItem).where(ActionItem.launch_id == launch.id)
                                           .order_by(ActionItem.number)).all())
    _rollout(session, launch, config, retro)
    _action_items(session, launch, retro)
    return retro


def _rollout(session: Session, launch: Launch, config: Config, retro: Retro) -> None:
    """The phases entered, each metric's readings against its gates and triggers, the triggers that fired."""
    retro.phases = list(session.exec(select(RolloutPhase).where(RolloutPhase.launch_id == launch.id)
                                     .order_by(RolloutPhase.position)).all())
    plan = config.rollout
    by_key = {t.key: t for t in plan.rollback_when}
    retro.triggers = [(f, by_key.get(f.trigger)) for f in session.exec(
        select(TriggerFiring).where(TriggerFiring.launch_id == launch.id).order_by(TriggerFiring.fired_at)).all()]  # type: ignore[arg-type]
    for source in config.metrics.sources:
        readings = session.exec(select(MetricReading).where(
            MetricReading.launch_id == launch.id, MetricReading.source == source.name)
            .order_by(MetricReading.read_at, MetricReading.id)).all()  # type: ignore[arg-type]
        values = [r.value for r in readings if r.ok and r.value is not None]
        retro.metrics.append(MetricRow(
            name=source.name, readings=len(readings), failed=len(readings) - len(values),
            low=min(values, default=None), high=max(values, default=None), last=values[-1] if values else None,
            gates=[(g, p.name) for p in plan.phases for g in p.gates if g.metric == source.name],
            triggers=[t for t in plan.rollback_when if t.when.metric == source.name]))


def _heartbeats(session: Session, launch: Launch, config: Config, retro: Retro, incidents: Any) -> None:
    """The figures each heartbeat reported: open incidents, latest probe reading, engagement."""
    results = session.exec(select(ProbeResult).where(ProbeResult.launch_id == launch.id)
                           .order_by(ProbeResult.checked_at)).all()  # type: ignore[arg-type]
    retro.probes = sorted({r.probe for r in results} | {p.name for p in config.probes})
    posts = session.exec(select(OutboxMessage).where(OutboxMessage.launch_id == launch.id,
                                                     OutboxMessage.kind.startswith("heartbeat"),  # type: ignore[attr-defined]
                                                     OutboxMessage.method == "chat.postMessage")
                         .order_by(OutboxMessage.created_at, OutboxMessage.id)).all()  # type: ignore[arg-type]
    interval = timedelta(seconds=launch.heartbeat_every_s or 1800)
    activity = session.exec(select(Activity).where(Activity.launch_id == launch.id)).all()
    for post in posts:
        t = post.created_at
        assert t is not None
        figures = {}
        for probe in retro.probes:
            latest = [r for r in results if r.probe == probe and r.checked_at is not None and r.checked_at <= t]
            if not latest:
                figures[probe] = "no reading"
            elif latest[-1].ok and latest[-1].latency_ms is not None:
                figures[probe] = f"{latest[-1].latency_ms:.0f} ms"
            else:
                figures[probe] = f"failed ({latest[-1].error or latest[-1].status_code or 'no answer'})"
        open_now = sum(1 for i in incidents if i.declared_at <= t and (i.resolved_at is None or i.resolved_at > t))
        users = {a.user_id for a in activity if a.at is not None and t - interval < a.at <= t}
        retro.heartbeats.append(HeartbeatRow(ts=t, open_incidents=open_now, figures=figures, engagement=len(users)))
    for probe in retro.probes:
        mine = [r for r in results if r.probe == probe]
        ok = sorted(r.latency_ms for r in mine if r.ok and r.latency_ms is not None)
        retro.probe_summary.append({
            "probe": probe, "checks": len(mine), "failed": sum(1 for r in mine if not r.ok),
            "p50": f"{ok[len(ok) // 2]:.0f} ms" if ok else "-", "max": f"{ok[-1]:.0f} ms" if ok else "-"})


def _polls(session: Session, launch: Launch, retro: Retro) -> None:
    for poll in session.exec(select(Poll).where(Poll.launch_id == launch.id).order_by(Poll.opened_at, Poll.id)).all():  # type: ignore[arg-type]
        votes = list(session.exec(select(Vote).where(Vote.poll_id == poll.id).order_by(Vote.cast_at, Vote.id)).all())  # type: ignore[arg-type]
        voted = {v.role for v in votes}
        assert poll.opened_at is not None
        retro.polls.append(PollRow(kind=poll.kind, opened_by=poll.opened_by, opened_at=poll.opened_at,
                                   closed_at=poll.closed_at, outcome=poll.outcome, votes=votes,
                                   missing=[r for r in poll.roles if r not in voted]))


def _action_items(session: Session, launch: Launch, retro: Retro) -> None:
    for item in retro.action_items:
        if item.state == "open":
            retro.actions.append(f"A-{item.number}: {item.text}")
    for row in retro.incidents:
        if row.status != "resolved":
            state = "not acknowledged" if row.acknowledged_at is None else "acknowledged, not resolved"
            retro.actions.append(f"Close INC-{row.number} [{row.severity}] {row.summary} ({state})")
    for rollback, steps in retro.rollbacks:
        for step in steps:
            if step.done_at is None:
                retro.actions.append(f"Rollback #{rollback.id}: step {step.position} not ticked: {step.text}")
    for poll in retro.polls:
        if poll.outcome is None:
            retro.actions.append(f"The {poll.kind} opened at {poll.opened_at:%H:%M} UTC has no outcome"
                                 + (f" (missing: {', '.join(poll.missing)})" if poll.missing else ""))
    failed = retro.deliveries.get("failed", 0)
    if failed:
        retro.actions.append(f"{failed} message(s) could not be delivered to Slack (see the ndjson export)")
    retro.actions.extend(POST_LAUNCH_CHECKLIST)


def retrospective(session: Session, launch: Launch, config: Config, now: datetime) -> str:
    retro = gather(session, launch, config, now)
    return render_file("retro.md.j2", r=retro, t0=launch.t0, tz=retro.tz)
