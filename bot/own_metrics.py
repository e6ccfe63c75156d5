"""warroom's own metrics, for the SREs who run it: `GET /metrics` on the serve port, in Prometheus's text
format, written by prometheus_client.

What the database holds is read when Prometheus scrapes (the same figures from every replica): outbox
messages pending per channel and the oldest one's age, timers due and how late the oldest is, failed
metric readings by source, the rollout's percent. What this process did is counted as it happens
(per process, as Prometheus expects of each target): command latency by command, delivery latency (queued
to posted) and attempts per delivered message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.clock import Clock
from db.models import OutboxMessage, Timer
from db.rollout import MetricReading, RolloutPhase
from db.session import reading

log = logging.getLogger("warroom.metrics")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
ATTEMPT_BUCKETS = (1, 2, 3, 5, 10)


class LaunchState(Collector):
    """Gauges read from the database at each scrape."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine, self.clock = engine, clock

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: nothing is read when the collector is registered

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("warroom_database_up", "1 when the database answered this scrape")
        try:
            families = list(self._read(self.clock.now()))
        except Exception:  # a scrape never fails for the database's sake: it says so
            log.exception("reading the state for /metrics failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self, now: datetime) -> Iterator[Metric]:
        with reading(self.engine) as session:
            pending = session.exec(select(OutboxMessage.channel, func.count(), func.min(OutboxMessage.created_at))
                                   .where(OutboxMessage.status == "pending").group_by(OutboxMessage.channel)).all()
            due = session.exec(select(Timer.kind, func.count(), func.min(Timer.due_at)).where(
                Timer.done_at.is_(None), Timer.due_at <= now).group_by(Timer.kind)).all()  # type: ignore[union-attr,operator]
            failed = session.exec(select(MetricReading.source, func.count()).where(MetricReading.ok.is_(False))  # type: ignore[attr-defined]
                                  .group_by(MetricReading.source)).all()
            phase = session.exec(select(RolloutPhase).order_by(RolloutPhase.id.desc()).limit(1)).first()  # type: ignore[union-attr]
        outbox = GaugeMetricFamily("warroom_outbox_pending", "Messages waiting to be posted to Slack", labels=["channel"])
        oldest = GaugeMetricFamily("warroom_outbox_oldest_pending_age_seconds",
                                   "Age of the oldest message waiting for its channel", labels=["channel"])
        for channel, count, first in pending:
            outbox.add_metric([channel], count)
            oldest.add_metric([channel], max((now - first).total_seconds(), 0.0) if first else 0.0)
        timers = GaugeMetricFamily("warroom_timers_due", "Deadlines due and not yet run", labels=["kind"])
        lag = GaugeMetricFamily("warroom_timer_lag_seconds", "How late the oldest due deadline of each kind is",
                                labels=["kind"])
        for kind, count, first in due:
            timers.add_metric([kind], count)
            lag.add_metric([kind], max((now - first).total_seconds(), 0.0) if first else 0.0)
        readings = CounterMetricFamily("warroom_metric_readings_failed", "Metric readings that failed, by source",
                                       labels=["source"])
        for source, count in failed:
            readings.add_metric([source], count)
        percent = GaugeMetricFamily("warroom_rollout_percent", "The percent of the rollout's current phase")
        if phase is not None:
            percent.add_metric([], phase.percent)
        yield from (outbox, oldest, timers, lag, readings, percent)


class OwnMetrics:
    """One registry per runtime (tests run several in a process): the state collector and this process's
    histograms, observed by the dispatcher (`command`) and the outbox (`delivered`)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LaunchState(engine, clock))
        self.commands = Histogram("warroom_command_seconds", "Time to run a command, button or form, by command",
                                  ["command"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.delivery = Histogram("warroom_outbox_delivery_seconds", "From a message queued to it posted in Slack",
                                  buckets=DELIVERY_BUCKETS, registry=self.registry)
        self.attempts = Histogram("warroom_outbox_delivery_attempts", "Attempts a posted message took",
                                  buckets=ATTEMPT_BUCKETS, registry=self.registry)

    def command(self, name: str, seconds: float) -> None:
        self.commands.labels(name[:40]).observe(seconds)

    def delivered(self, seconds: float, attempts: int) -> None:
        self.delivery.observe(max(seconds, 0.0))
        self.attempts.observe(attempts)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
