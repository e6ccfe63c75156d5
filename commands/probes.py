"""Probes as a monitor: when each is due, what its results mean, and the one alert per trouble.

Each configured probe has a `probe` Timer per launch: the edge (bot/probes.py)
claims the due ones here (the claim arms the next check in the same
transaction, so two replicas never check one probe twice), does the HTTP outside
any transaction, then hands the outcomes back to `record_results`. A probe
that breaches its threshold_ms, or fails 3 checks in a row, gets one alert with a
button to declare an incident; one recovery note when it is healthy again; a
new alert no sooner than QUIET after a recovery (no alert storm).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import select

from commands.authority import locked_launch
from commands.config import Probe
from commands.context import Context, Result, post, record
from commands.errors import CommandError
from commands.heartbeat import latest_result
from commands.incident import Declaration, declare
from commands.registry import action
from commands.render import reply
from db.models import Incident, ProbeResult, ProbeState, Timer

FAILURES_TO_ALERT = 3
QUIET = timedelta(minutes=10)
KIND = "probe"


@dataclass(frozen=True)
class ProbeOutcome:
    """One check, as the edge measured it."""

    name: str
    checked_at: datetime
    ok: bool
    latency_ms: float | None = None
    status_code: int | None = None
    error: str | None = None
    value: float | None = None


def probe_config(ctx: Context, name: str) -> Probe | None:
    return next((p for p in ctx.config.probes if p.name == name), None)


def next_check_at(ctx: Context) -> datetime | None:
    """The earliest pending probe check of the launch (None: none armed yet)."""
    return ctx.session.exec(
        select(Timer.due_at).where(Timer.launch_id == ctx.launch.id, Timer.kind == KIND,
                                   Timer.done_at.is_(None)).order_by(Timer.due_at).limit(1)  # type: ignore[union-attr]
    ).first()


def claim_due_checks(ctx: Context) -> list[Probe]:
    """The probes to check now; each claim arms the probe's next check (one transaction)."""
    if not ctx.config.probes:
        return []
    assert ctx.launch.id is not None
    locked_launch(ctx)  # serialises first-time arming between replicas
    pending = ctx.session.exec(
        select(Timer).where(Timer.launch_id == ctx.launch.id, Timer.kind == KIND, Timer.done_at.is_(None))  # type: ignore[union-attr]
    ).all()
    by_name = {str(t.payload.get("probe")): t for t in pending}
    due: list[Probe] = []
    for name, t in by_name.items():
        if probe_config(ctx, name) is None:  # removed from the config
            t.done_at = ctx.now
            t.payload = {**t.payload, "cancelled": "not configured"}
            ctx.session.add(t)
    for probe in ctx.config.probes:
        t = by_name.get(probe.name)
        if t is None:  # first check of this probe for this launch: now
            if ctx.session.exec(select(ProbeState).where(ProbeState.launch_id == ctx.launch.id,
                                                         ProbeState.probe == probe.name)).first() is None:
                ctx.session.add(ProbeState(launch_id=ctx.launch.id, probe=probe.name, changed_at=None))
            due.append(probe)
        elif t.due_at is not None and t.due_at <= ctx.now:
            won = ctx.session.exec(  # type: ignore[call-overload]
                update(Timer).where(Timer.id == t.id, Timer.done_at.is_(None)).values(done_at=ctx.now)  # type: ignore[union-attr]
            ).rowcount
            if won != 1:
                continue
            due.append(probe)
        else:
            continue
        ctx.session.add(Timer(launch_id=ctx.launch.id, kind=KIND, due_at=ctx.now + probe.every, created_at=ctx.now,
                              payload={"probe": probe.name}))
    return due


def record_results(ctx: Context, outcomes: list[ProbeOutcome]) -> None:
    for outcome in outcomes:
        probe = probe_config(ctx, outcome.name)
        if probe is None:
            continue
        ctx.session.add(ProbeResult(launch_id=ctx.launch.id, probe=outcome.name, checked_at=outcome.checked_at,
                                    ok=outcome.ok, latency_ms=outcome.latency_ms, status_code=outcome.status_code,
                                    error=(outcome.error or None) and outcome.error[:500], value=outcome.value))
        judge(ctx, probe, outcome)


def judge(ctx: Context, probe: Probe, outcome: ProbeOutcome) -> None:
    """Alert once on trouble, note the recovery once."""
    assert ctx.launch.id is not None
    state = ctx.session.exec(
        select(ProbeState).where(ProbeState.launch_id == ctx.launch.id, ProbeState.probe == probe.name)
        .with_for_update(key_share=True)
    ).first()
    if state is None:
        state = ProbeState(launch_id=ctx.launch.id, probe=probe.name)
    slow = bool(outcome.ok and probe.threshold_ms and (outcome.latency_ms or 0) > probe.threshold_ms)
    state.consecutive_failures = 0 if outcome.ok else state.consecutive_failures + 1
    trouble = slow or state.consecutive_failures >= FAILURES_TO_ALERT
    values = {"probe": probe, "outcome": outcome, "slow": slow, "failures": state.consecutive_failures}
    if trouble and not state.alerting:
        if state.changed_at is not None and ctx.now - state.changed_at < QUIET:
            ctx.session.add(state)  # recovered moments ago: wait out the quiet period before a new alert
            return
        state.alerting, state.changed_at = True, ctx.now
        post(ctx, ctx.launch.war_room, "probe_alert", kind="probe.alert", **values)
        record(ctx, "probe.alerted", probe=probe.name, slow=slow, failures=state.consecutive_failures,
               latency_ms=outcome.latency_ms, error=outcome.error)
    elif state.alerting and outcome.ok and not slow:
        since = state.changed_at
        state.alerting, state.changed_at = False, ctx.now
        post(ctx, ctx.launch.war_room, "probe_recovered", kind="probe.recovered", since=since, **values)
        record(ctx, "probe.recovered", probe=probe.name, latency_ms=outcome.latency_ms)
    ctx.session.add(state)


@action("probe_declare")
def declare_from_probe(ctx: Context, value: str) -> Result:
    """The alert's button: declare an incident pre-filled from the probe (once per open trouble)."""
    probe = probe_config(ctx, value)
    if probe is None:
        raise CommandError(reply("probes.probe_gone"))
    source = f"probe:{probe.name}"
    existing = ctx.session.exec(
        select(Incident).where(Incident.launch_id == ctx.launch.id, Incident.source == source,
                               Incident.status.in_(("open", "acknowledged")))  # type: ignore[attr-defined]
    ).first()
    if existing is not None:
        return Result(reply=reply("probes.already_open", incident=existing, probe=probe))
    result = latest_result(ctx, probe.name)
    failing = result is not None and not result.ok
    incident = declare(ctx, Declaration(
        severity="sev1" if failing else "sev2", summary=incident_summary(probe, result)[:500],
        impact=f"Seen by the {probe.name} probe ({probe.url})"[:2000], source=source,
    ))
    return Result(reply=reply("probes.declared", incident=incident, probe=probe))


def incident_summary(probe: Probe, result: ProbeResult | None) -> str:
    """Stored as the incident's summary (raw text: the message templates escape it when they print it)."""
    if result is None:
        return f"{probe.name} probe: trouble reported"
    if not result.ok:
        return f"{probe.name} probe failing: {result.error or f'HTTP {result.status_code}'}"
    return f"{probe.name} probe slow: {round(result.latency_ms or 0)} ms against a {round(probe.threshold_ms or 0)} ms threshold"
