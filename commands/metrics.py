"""Metric readings: when the sources are due, what was read, and what the readings say about a condition.

The edge (bot/metrics_reader.py) claims the due reading here (`claim_due_reading`: one `metrics` Timer per
launch, re-armed `metrics.every` ahead in the same transaction, so two replicas never read twice), reads
every source with httpx outside any transaction, and hands the readings back to commands/triggers.py,
which stores them (`store_readings`) and checks the rollback triggers. A failed reading is a row with
`ok` false and its error, never a number.

`streak_since` is what gates and triggers share: when the current unbroken run of readings holding a
condition began (a failed reading breaks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, update
from sqlmodel import Session, select

from commands.authority import locked_launch
from commands.config_rollout import OPERATORS, Condition
from commands.context import Context
from db.models import Timer
from db.rollout import MetricReading

KIND = "metrics"
MAX_ERROR = 300


@dataclass(frozen=True)
class Reading:
    """One source read by the edge: a value, or an error."""

    source: str
    read_at: datetime
    value: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


def stale_after(ctx: Context) -> timedelta:
    """A reading older than this is no evidence of the present (the reader stopped, or a source vanished)."""
    return max(ctx.config.metrics.every * 3, timedelta(minutes=3))


# -- when to read --------------------------------------------------------------------------------
def next_reading_at(ctx: Context) -> datetime | None:
    return ctx.session.exec(
        select(Timer.due_at).where(Timer.launch_id == ctx.launch.id, Timer.kind == KIND,
                                   Timer.done_at.is_(None)).order_by(Timer.due_at).limit(1)  # type: ignore[union-attr]
    ).first()


def claim_due_reading(ctx: Context) -> bool:
    """True when this process should read the sources now; the claim arms the next reading."""
    if not ctx.config.metrics.sources:
        return False
    locked_launch(ctx)  # first-time arming between replicas
    pending = ctx.session.exec(
        select(Timer).where(Timer.launch_id == ctx.launch.id, Timer.kind == KIND, Timer.done_at.is_(None))  # type: ignore[union-attr]
        .order_by(Timer.due_at)
    ).first()
    if pending is not None:
        if pending.due_at is not None and pending.due_at > ctx.now:
            return False
        won = ctx.session.exec(  # type: ignore[call-overload]
            update(Timer).where(Timer.id == pending.id, Timer.done_at.is_(None)).values(done_at=ctx.now)  # type: ignore[union-attr]
        ).rowcount
        if won != 1:
            return False
    ctx.session.add(Timer(launch_id=ctx.launch.id, kind=KIND, due_at=ctx.now + ctx.config.metrics.every,
                          created_at=ctx.now, payload={}))
    return True


def store_readings(ctx: Context, readings: list[Reading]) -> None:
    known = {s.name for s in ctx.config.metrics.sources}
    for r in readings:
        if r.source not in known:
            continue
        ctx.session.add(MetricReading(launch_id=ctx.launch.id, source=r.source, read_at=r.read_at, ok=r.ok,
                                      value=r.value if r.ok else None,
                                      error=None if r.ok else (r.error or "no value")[:MAX_ERROR]))


# -- what the readings say -----------------------------------------------------------------------
def latest_reading(session: Session, launch_id: int, source: str) -> MetricReading | None:
    return session.exec(
        select(MetricReading).where(MetricReading.launch_id == launch_id, MetricReading.source == source)
        .order_by(MetricReading.read_at.desc(), MetricReading.id.desc()).limit(1)  # type: ignore[union-attr]
    ).first()


def latest_readings(session: Session, launch_id: int, sources: Any) -> dict[str, MetricReading | None]:
    """The newest reading of each configured source (None: not read yet), for heartbeats, the board, App Home."""
    return {s.name: latest_reading(session, launch_id, s.name) for s in sources}


def _holding(condition: Condition) -> ColumnElement[bool]:
    value = MetricReading.value
    return and_(MetricReading.ok, value.is_not(None), OPERATORS[condition.op](value, condition.number))  # type: ignore[union-attr,arg-type]


def streak_since(ctx: Context, condition: Condition, since: datetime | None = None) -> datetime | None:
    """When the current run of readings holding the condition began (counting readings from `since`);
    None when the newest reading does not hold it, failed, or there is none."""
    where = [MetricReading.launch_id == ctx.launch.id, MetricReading.source == condition.metric]
    if since is not None:
        where.append(MetricReading.read_at >= since)  # type: ignore[operator]
    last_break = ctx.session.exec(select(func.max(MetricReading.read_at)).where(
        *where, not_(_holding(condition)))).one()
    if last_break is not None:
        where.append(MetricReading.read_at > last_break)  # type: ignore[operator]
    return ctx.session.exec(select(func.min(MetricReading.read_at)).where(*where, _holding(condition))).one()


def judged(ctx: Context, condition: Condition, reading: MetricReading | None) -> str:
    """`pass`, `fail`, `failed` (the reading failed), `stale` or `none` for a condition's newest reading."""
    if reading is None:
        return "none"
    if not reading.ok or reading.value is None:
        return "failed"
    if reading.read_at is not None and ctx.now - reading.read_at > stale_after(ctx):
        return "stale"
    return "pass" if condition.holds(reading.value) else "fail"


def metric_figures(ctx: Context, gates: tuple[Condition, ...]) -> list[dict[str, Any]]:
    """Each source's newest reading, with the gates that name it judged against it."""
    assert ctx.launch.id is not None
    latest = latest_readings(ctx.session, ctx.launch.id, ctx.config.metrics.sources)
    return [{"name": name, "reading": reading,
             "gates": [(g, judged(ctx, g, reading)) for g in gates if g.metric == name],
             "stale": bool(reading and reading.read_at and ctx.now - reading.read_at > stale_after(ctx))}
            for name, reading in latest.items()]
