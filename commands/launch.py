"""The run-of-show: `/launch status|t0|start` and the `mark` timers that call each mark on time.

Each run_of_show entry is a `mark` Timer at T0 + its offset (commands/setup.py).
The T0 mark announces the launch (war room and every broadcast channel) and
starts the heartbeat, unless `/launch start` did so already. After a restart,
a mark late by up to an hour is posted saying how late; marks late by more are
summarised in one message instead of being replayed one by one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import select

from commands import actions, readiness
from commands.authority import locked_launch, require_commander
from commands.context import Context, Result, post, record
from commands.errors import CommandError
from commands.heartbeat import open_incidents, pending_heartbeats, start_heartbeat
from commands.parse import parse_time
from commands.registry import slash, timer
from commands.render import day_and_time, render, reply
from commands.setup import schedule_run_of_show
from db.models import Launch, Timer

USAGE = reply("launch.usage")
SUMMARISE_AFTER = timedelta(hours=1)  # marks later than this are summarised, not replayed
LATE_AFTER = timedelta(seconds=60)
MAX_T0_SHIFT = timedelta(days=366)


def pending_marks(ctx: Context) -> list[Timer]:
    return list(ctx.session.exec(
        select(Timer).where(Timer.launch_id == ctx.launch.id, Timer.kind == "mark",
                            Timer.done_at.is_(None)).order_by(Timer.due_at, Timer.id)  # type: ignore[union-attr]
    ).all())


def announcement_text(ctx: Context) -> str:
    return ctx.config.announcement.replace("{name}", ctx.launch.name)


def start_launch(ctx: Context, *, anchor: datetime, via: str) -> bool:
    """Announce the launch and start the heartbeat, once (the launch row is locked while deciding)."""
    launch = locked_launch(ctx)
    if launch.started_at is not None:
        return False
    launch.started_at = ctx.now
    launch.started_by = ctx.user
    ctx.session.add(launch)
    text = announcement_text(ctx)
    for channel in dict.fromkeys((launch.war_room, *ctx.config.broadcast)):
        post(ctx, channel, "announcement", kind="launch.announcement", text=text)
    start_heartbeat(ctx, launch, anchor)
    record(ctx, "launch.started", via=via, anchor=anchor.isoformat())
    return True


# -- the marks -------------------------------------------------------------------
@timer("mark")
def mark_due(ctx: Context, due: Timer) -> None:
    assert due.due_at is not None
    late = ctx.now - due.due_at
    if late > SUMMARISE_AFTER:
        summarise_missed(ctx, due)
        return
    label, text = str(due.payload.get("label", "")), str(due.payload.get("text", ""))
    announced = start_launch(ctx, anchor=due.due_at, via=f"mark {label}") if due.payload.get("t0") else False
    if text or (due.payload.get("t0") and not announced):
        post(ctx, ctx.launch.war_room, "mark", kind="launch.mark", label=label, text=text, due_at=due.due_at,
             late=late if late > LATE_AFTER else None, t0=bool(due.payload.get("t0")), announced=announced)
    record(ctx, "launch.mark", label=label, late_s=late.total_seconds(), announced=announced)


def summarise_missed(ctx: Context, first: Timer) -> None:
    """Every mark more than an hour late, in one message; each claimed here so none is replayed."""
    cutoff = ctx.now - SUMMARISE_AFTER
    others = ctx.session.exec(
        select(Timer.id).where(Timer.launch_id == first.launch_id, Timer.kind == "mark", Timer.id != first.id,
                               Timer.done_at.is_(None), Timer.due_at < cutoff)  # type: ignore[union-attr,operator]
    ).all()
    missed = [first]
    for timer_id in others:
        won = ctx.session.exec(  # type: ignore[call-overload]
            update(Timer).where(Timer.id == timer_id, Timer.done_at.is_(None)).values(done_at=ctx.now)  # type: ignore[union-attr]
        ).rowcount
        if won == 1:
            claimed = ctx.session.get(Timer, timer_id)
            assert claimed is not None
            ctx.session.refresh(claimed)
            missed.append(claimed)
    missed.sort(key=lambda t: (t.due_at, t.id))
    launch = locked_launch(ctx)
    heartbeat_started = False
    t0_missed = any(t.payload.get("t0") for t in missed)
    if t0_missed and launch.started_at is None and launch.t0 is not None and not pending_heartbeats(ctx, launch):
        heartbeat_started = start_heartbeat(ctx, launch, launch.t0) is not None
    items = [{"label": t.payload.get("label"), "text": t.payload.get("text", ""), "due_at": t.due_at,
              "when": _local(ctx, t.due_at) if t.due_at else "",
              "late": ctx.now - t.due_at if t.due_at else None, "t0": bool(t.payload.get("t0"))} for t in missed]
    post(ctx, launch.war_room, "marks_missed", kind="launch.marks_missed", items=items,
         announced=launch.started_at is not None, heartbeat_started=heartbeat_started)
    record(ctx, "launch.marks_missed", labels=[i["label"] for i in items],
           late_s=[(i["late"] or timedelta(0)).total_seconds() for i in items])


# -- /launch -------------------------------------------------------------------------
@slash("/launch", usage=USAGE, summary="the run-of-show: where we are against T0; move T0; announce the launch")
def launch_command(ctx: Context, text: str) -> Result:
    verb, _, rest = text.partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb in ("", "status"):
        if rest:
            raise CommandError(reply("launch.takes_nothing", verb="status"), USAGE)
        return status(ctx)
    if verb == "t0":
        if not rest:
            raise CommandError(reply("launch.t0_needs_a_time"), USAGE)
        when = parse_time(rest) if len(rest) <= 60 else None
        if when is None:
            raise CommandError(reply("launch.not_a_time", word=rest), USAGE)
        if abs(when - ctx.now) > MAX_T0_SHIFT:
            raise CommandError(reply("launch.t0_within_a_year"), USAGE)
        require_commander(ctx, "/launch t0")
        return move_t0(ctx, when)
    if verb == "start":
        if rest:
            raise CommandError(reply("launch.takes_nothing", verb="start"), USAGE)
        require_commander(ctx, "/launch start")
        if not start_launch(ctx, anchor=ctx.now, via="/launch start"):
            launch = ctx.launch
            return Result(reply=reply("launch.already_started", launch=launch, tz=ctx.tz))
        return Result(reply=reply("launch.announced"))
    raise CommandError(reply("launch.not_a_subcommand", word=verb), USAGE)


def move_t0(ctx: Context, when: datetime) -> Result:
    launch = locked_launch(ctx)
    before = launch.t0
    if before == when:
        return Result(reply=reply("launch.t0_already", local=_local(ctx, when)))
    launch.t0 = when
    ctx.session.add(launch)
    schedule_run_of_show(ctx.session, launch, ctx.config, ctx.now)
    ctx.session.flush()
    marks = pending_marks(ctx)
    record(ctx, "launch.t0_moved", before=before.isoformat() if before else None, after=when.isoformat(),
           marks_moved=len(marks))
    post(ctx, launch.war_room, "launch_t0", kind="launch.t0_moved", before=before, after=when, marks=marks,
         local=_local(ctx, when))
    readiness.follow_t0(ctx)  # dues given as T-offsets move with T0
    actions.follow_t0(ctx)
    return Result(reply=reply("launch.t0_moved", local=_local(ctx, when), marks=marks))


def status(ctx: Context) -> Result:
    launch: Launch = ctx.launch
    heartbeat = pending_heartbeats(ctx, launch)
    return Result(reply=render(
        "launch_status.j2", launch=launch, now=ctx.now, tz=ctx.tz, marks=pending_marks(ctx)[:3],
        local=_local(ctx, launch.t0) if launch.t0 else None, incidents=open_incidents(ctx),
        next_beat=heartbeat[0].due_at if heartbeat else None,
    ))


def _local(ctx: Context, when: datetime) -> str:
    return day_and_time(when, ctx.tz)
