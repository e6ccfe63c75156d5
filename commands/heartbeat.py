"""The status heartbeat (seed 000 §4): `Status Update – Time HH:MM. Incidents open: X (list). Latency:
N ms. Operator engagement: Y active sessions. Next checkpoint HH:MM.`

A `heartbeat` Timer chain per launch, started by `/launch start` or the T0 mark:
every `launch.heartbeat_every_s` until `launch.heartbeat_until` (start + heartbeat.for;
`/heartbeat resume` clears the end). `/heartbeat` posts one now (anyone); `pause`,
`resume` and `every 15m` are the commander's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from commands.authority import locked_launch, require_commander
from commands.context import Context, Result, post, record
from commands.errors import CommandError
from commands.parse import parse_duration
from commands.readiness import before_t0_summary
from commands.registry import slash, timer
from commands.render import reply
from commands.rollout import figures
from db.models import Activity, Incident, Launch, ProbeResult, Timer

USAGE = reply("heartbeat.usage")
MIN_EVERY = timedelta(minutes=1)
MAX_EVERY = timedelta(hours=24)
LATE_AFTER = timedelta(seconds=60)
CHECKPOINT_OFFSETS = (("T+1h", timedelta(hours=1)), ("T+4h", timedelta(hours=4)))  # seed 000 §3


# -- the chain ---------------------------------------------------------------
def pending_heartbeats(ctx: Context, launch: Launch) -> list[Timer]:
    return list(ctx.session.exec(
        select(Timer).where(Timer.launch_id == launch.id, Timer.kind == "heartbeat",
                            Timer.done_at.is_(None)).order_by(Timer.due_at)  # type: ignore[union-attr]
    ).all())


def cancel_heartbeats(ctx: Context, launch: Launch, why: str) -> None:
    for t in pending_heartbeats(ctx, launch):
        t.done_at = ctx.now
        t.payload = {**t.payload, "cancelled": why}
        ctx.session.add(t)


def first_after(anchor: datetime, every: timedelta, now: datetime) -> datetime:
    """The first anchor + k·every (k ≥ 1) later than now: missed beats are skipped, not replayed."""
    due = anchor + every
    if due <= now:
        due += every * ((now - due) // every + 1)
    return due


def arm_heartbeat(ctx: Context, launch: Launch, due: datetime) -> Timer:
    assert launch.id is not None
    beat = Timer(launch_id=launch.id, kind="heartbeat", due_at=due, created_at=ctx.now, payload={})
    ctx.session.add(beat)
    return beat


def start_heartbeat(ctx: Context, launch: Launch, anchor: datetime) -> Timer | None:
    """Heartbeats every heartbeat_every_s from anchor until anchor + heartbeat.for (the caller holds the launch lock)."""
    cancel_heartbeats(ctx, launch, "restarted")
    launch.heartbeat_until = anchor + ctx.config.heartbeat_for
    launch.heartbeat_paused = False
    ctx.session.add(launch)
    due = first_after(anchor, timedelta(seconds=launch.heartbeat_every_s), ctx.now)
    if due > launch.heartbeat_until:
        return None
    record(ctx, "heartbeat.started", anchor=anchor.isoformat(), until=launch.heartbeat_until.isoformat(),
           every_s=launch.heartbeat_every_s)
    return arm_heartbeat(ctx, launch, due)


@timer("heartbeat")
def heartbeat_due(ctx: Context, due: Timer) -> None:
    launch = locked_launch(ctx)
    if launch.heartbeat_paused or due.due_at is None:
        return
    every = timedelta(seconds=launch.heartbeat_every_s)
    following = first_after(due.due_at, every, ctx.now)
    last = launch.heartbeat_until is not None and following > launch.heartbeat_until
    late = ctx.now - due.due_at
    post_heartbeat(ctx, late=late if late > LATE_AFTER else None, last=last)
    if not last:
        arm_heartbeat(ctx, launch, following)


# -- the figures -------------------------------------------------------------
def open_incidents(ctx: Context) -> list[Incident]:
    return list(ctx.session.exec(
        select(Incident).where(Incident.launch_id == ctx.launch.id,
                               Incident.status.in_(("open", "acknowledged")))  # type: ignore[attr-defined]
        .order_by(Incident.severity, Incident.number)
    ).all())


def latest_result(ctx: Context, probe: str) -> ProbeResult | None:
    return ctx.session.exec(
        select(ProbeResult).where(ProbeResult.launch_id == ctx.launch.id, ProbeResult.probe == probe)
        .order_by(ProbeResult.checked_at.desc(), ProbeResult.id.desc()).limit(1)  # type: ignore[union-attr]
    ).first()


def probe_figures(ctx: Context, metric: str = "latency") -> list[dict[str, Any]]:
    """The latest result of each configured probe of this metric: never a zero for a failure."""
    figures = []
    for probe in ctx.config.probes:
        if probe.metric != metric:
            continue
        result = latest_result(ctx, probe.name)
        stale_after = max(probe.every * 3, timedelta(minutes=5))
        figures.append({
            "name": probe.name, "result": result, "threshold_ms": probe.threshold_ms,
            "slow": bool(result and result.ok and probe.threshold_ms and (result.latency_ms or 0) > probe.threshold_ms),
            "stale": bool(result and result.checked_at and ctx.now - result.checked_at > stale_after),
        })
    return figures


def engagement(ctx: Context, window: timedelta) -> dict[str, Any]:
    """Active sessions from an engagement probe when one answered, else distinct people active in the window."""
    for figure in probe_figures(ctx, "engagement"):
        result = figure["result"]
        if result is not None and result.ok and result.value is not None and not figure["stale"]:
            return {"count": int(result.value), "source": figure["name"]}
    count = ctx.session.exec(
        select(func.count(func.distinct(Activity.user_id))).where(
            Activity.launch_id == ctx.launch.id, Activity.at >= ctx.now - window, Activity.at <= ctx.now)
    ).one()
    return {"count": int(count), "source": None}


def next_checkpoint(ctx: Context) -> dict[str, Any] | None:
    """The next run-of-show mark that is a checkpoint, else T+1h / T+4h after T0."""
    marks = ctx.session.exec(
        select(Timer).where(Timer.launch_id == ctx.launch.id, Timer.kind == "mark", Timer.done_at.is_(None),  # type: ignore[union-attr]
                            Timer.due_at > ctx.now).order_by(Timer.due_at)  # type: ignore[operator]
    ).all()
    for mark in marks:
        if "checkpoint" in str(mark.payload.get("text", "")).lower():
            return {"at": mark.due_at, "label": mark.payload.get("label")}
    t0 = ctx.launch.t0
    if t0 is not None:
        for label, offset in CHECKPOINT_OFFSETS:
            if t0 + offset > ctx.now:
                return {"at": t0 + offset, "label": label}
    return None


def post_heartbeat(ctx: Context, *, late: timedelta | None = None, last: bool = False,
                   asked_by: str | None = None) -> None:
    launch = ctx.launch
    window = timedelta(seconds=launch.heartbeat_every_s)
    incidents = open_incidents(ctx)
    latency = probe_figures(ctx, "latency")
    engaged = engagement(ctx, window)
    post(ctx, launch.war_room, "heartbeat", kind="heartbeat", incidents=incidents,
         severities=ctx.config.severities, latency=latency, engagement=engaged, window=window, metrics=figures(ctx),
         checkpoint=next_checkpoint(ctx), late=late, last=last, asked_by=asked_by,
         readiness=before_t0_summary(ctx))  # gates not ready, until T0
    record(ctx, "heartbeat.posted", open=len(incidents), engagement=engaged["count"], asked_by=asked_by,
           late_s=late.total_seconds() if late else 0, last=last,
           latency={f["name"]: (f["result"].latency_ms if f["result"] and f["result"].ok else None) for f in latency})


# -- /heartbeat ----------------------------------------------------------------
@slash("/heartbeat", usage=USAGE, summary="post the status heartbeat now; pause, resume or change its cadence")
def heartbeat_command(ctx: Context, text: str) -> Result:
    words = text.split()
    if not words:
        post_heartbeat(ctx, asked_by=ctx.user)
        return Result(reply=reply("heartbeat.posted"))
    verb = words[0].lower()
    if verb not in ("pause", "resume", "every"):
        raise CommandError(reply("heartbeat.not_a_subcommand", word=words[0]), USAGE)
    if verb in ("pause", "resume") and len(words) > 1:
        raise CommandError(reply("heartbeat.takes_nothing", verb=verb), USAGE)
    every = None
    if verb == "every":
        if len(words) != 2:
            raise CommandError(reply("heartbeat.every_needs_one_duration"), USAGE)
        every = parse_duration(words[1])
        if every is None:
            raise CommandError(reply("heartbeat.not_a_duration", word=words[1]), USAGE)
        if not MIN_EVERY <= every <= MAX_EVERY:
            raise CommandError(reply("heartbeat.every_out_of_range", shortest=MIN_EVERY, longest=MAX_EVERY,
                                     every=every), USAGE)
    require_commander(ctx, f"/heartbeat {verb}")
    launch = locked_launch(ctx)
    if verb == "pause":
        return pause(ctx, launch)
    if verb == "resume":
        return resume(ctx, launch)
    assert every is not None
    return change_cadence(ctx, launch, every)


def pause(ctx: Context, launch: Launch) -> Result:
    if launch.heartbeat_paused:
        return Result(reply=reply("heartbeat.already_paused"))
    launch.heartbeat_paused = True
    ctx.session.add(launch)
    cancel_heartbeats(ctx, launch, "paused")
    record(ctx, "heartbeat.paused")
    post(ctx, launch.war_room, "heartbeat_changed", kind="heartbeat.changed", change="paused", next_at=None)
    return Result(reply=reply("heartbeat.paused"))


def resume(ctx: Context, launch: Launch) -> Result:
    pending = pending_heartbeats(ctx, launch)
    if not launch.heartbeat_paused and pending:
        return Result(reply=reply("heartbeat.already_running", next_at=pending[0].due_at, tz=ctx.tz))
    launch.heartbeat_paused = False
    launch.heartbeat_until = None  # resumed: it keeps going past heartbeat.for until paused
    ctx.session.add(launch)
    cancel_heartbeats(ctx, launch, "resumed")
    beat = arm_heartbeat(ctx, launch, ctx.now + timedelta(seconds=launch.heartbeat_every_s))
    record(ctx, "heartbeat.resumed", next_at=beat.due_at.isoformat() if beat.due_at else None)
    post(ctx, launch.war_room, "heartbeat_changed", kind="heartbeat.changed", change="resumed", next_at=beat.due_at)
    return Result(reply=reply("heartbeat.resumed", next_at=beat.due_at, tz=ctx.tz))


def change_cadence(ctx: Context, launch: Launch, every: timedelta) -> Result:
    before = launch.heartbeat_every_s
    launch.heartbeat_every_s = int(every.total_seconds())
    ctx.session.add(launch)
    next_at = None
    if not launch.heartbeat_paused and pending_heartbeats(ctx, launch):
        cancel_heartbeats(ctx, launch, "cadence changed")
        next_at = arm_heartbeat(ctx, launch, ctx.now + every).due_at
    record(ctx, "heartbeat.cadence_changed", before_s=before, after_s=launch.heartbeat_every_s)
    post(ctx, launch.war_room, "heartbeat_changed", kind="heartbeat.changed", change="every", every=every,
         next_at=next_at)
    if next_at is None:
        return Result(reply=reply("heartbeat.cadence_when_running", every=every))
    return Result(reply=reply("heartbeat.cadence_set", every=every, next_at=next_at, tz=ctx.tz))
