"""Waking up for due work. The database says what is due; APScheduler only wakes us.

Every deadline is a Timer row. A pass reads the due ones and runs each in a transaction of its
own: the timer is claimed (`UPDATE timer SET done_at = now WHERE id = … AND done_at IS NULL`; a
second replica's claim matches no row, and on PostgreSQL a timer another replica has locked is
skipped), the row it is about (an escalation's incident) is locked, and its handler runs in a
savepoint. A handler that raises is rolled back alone: its timer stays claimed and is marked
failed (payload `failed`, audit event `timer.failed`, an ERROR log line), since a handler that
failed on this data would fail again. A database error (`OperationalError`: a deadlock, a dropped
connection) may pass: the claim is released for a later pass, at most MAX_ATTEMPTS times in all.
What fell due while the bot was down is done at the next pass.

The pass runs when the next deadline falls due, not on the next poll: after each pass, at
start-up, and when this process commits something that may create or arm a timer (`poke`), the
earliest pending deadline is looked up and the pass brought forward to it. The poll every
`interval` seconds stays, for what other replicas create.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete, update
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from bot.dispatch import Dispatcher
from bot.flag_webhook import run_rollback_webhooks, run_rollout_webhooks
from bot.metrics_reader import MetricsLoop
from bot.pagerduty import run_pagerduty_events
from bot.probes import ProbeLoop
from bot.statuspage import run_statuspage_updates
from commands.context import Context, record
from commands.registry import TIMER_SUBJECTS, TIMERS
from db.models import Launch, SeenRequest, Timer
from db.session import reading, transaction

log = logging.getLogger("warroom.scheduler")
BATCH = 500  # due timers read by one pass
SEEN_KEPT = timedelta(hours=1)
MAX_ATTEMPTS = 3  # a timer whose handler hit a database error is retried until it has been tried this often
POKE_GAP_S = 0.5  # commits that poke the scheduler look up the next deadline at most this often: each lookup
# costs the commands around it (at 0.05 s, a burst of declarations lost a third of its throughput to them), and
# the deadlines a command sets are minutes away, so being looked up half a second later never makes them late
# Timer kinds whose work is network I/O: never run inside the claiming transaction by run_due, but by
# their own runner (a separate job, so a slow remote never delays escalations).
EDGE_KINDS = frozenset({"rollback_webhook", "probe", "pagerduty_event", "statuspage_update",  # probe: bot/probes.py
                        "rollout_webhook", "metrics"})  # bot/flag_webhook.py, bot/metrics_reader.py
TIMER = Timer.__table__  # type: ignore[attr-defined]


def due_timers(dispatcher: Dispatcher, now: datetime) -> list[int]:
    """Ids of what is due, soonest first."""
    with reading(dispatcher.engine) as session:
        return list(session.exec(
            select(Timer.id).where(Timer.done_at.is_(None), Timer.due_at <= now,  # type: ignore[union-attr]
                                   Timer.kind.not_in(EDGE_KINDS))  # type: ignore[attr-defined]
            .order_by(Timer.due_at, Timer.id).limit(BATCH)  # type: ignore[arg-type]
        ).all())


def earliest_due(dispatcher: Dispatcher) -> datetime | None:
    """The soonest pending deadline of the work run_due does (ix_timer_due: done_at, due_at)."""
    with reading(dispatcher.engine) as session:
        return session.exec(
            select(Timer.due_at).where(Timer.done_at.is_(None), Timer.due_at.is_not(None),  # type: ignore[union-attr]
                                       Timer.kind.not_in(EDGE_KINDS))  # type: ignore[attr-defined]
            .order_by(Timer.due_at).limit(1)  # type: ignore[arg-type]
        ).first()


def run_due(dispatcher: Dispatcher) -> int:
    """One pass over due work. Returns how many timers this process claimed and ran."""
    ran = 0
    for timer_id in due_timers(dispatcher, dispatcher.clock.now()):
        try:
            ran += run_timer(dispatcher, timer_id)
        except Exception:  # the database failed under it: rolled back, the next pass tries again
            log.exception("timer failed to run", extra={"timer_id": timer_id})
    return ran


def run_timer(dispatcher: Dispatcher, timer_id: int) -> int:
    """Claim one due timer and run its handler, in one transaction. 1 if this process ran it."""
    with transaction(dispatcher.engine) as session:
        now = dispatcher.clock.now()
        won = session.execute(update(TIMER).where(TIMER.c.id == timer_id, TIMER.c.done_at.is_(None),
                                                  TIMER.c.due_at <= now).values(done_at=now)).rowcount
        if won != 1:
            return 0  # done by another replica, cancelled, or claimed by a handler before it
        timer = session.exec(select(Timer).where(Timer.id == timer_id)
                             .execution_options(populate_existing=True)).one()
        subject = TIMER_SUBJECTS.get(timer.kind)
        if subject is not None and timer.subject_id is not None:  # locked: no command changes it under the handler
            session.exec(select(subject).where(subject.id == timer.subject_id)  # type: ignore[attr-defined]
                         .with_for_update(key_share=True)).first()
        ctx = Context(session=session, now=now, config=dispatcher.config, user="warroom",
                      launch=session.get_one(Launch, timer.launch_id))
        handler = TIMERS.get(timer.kind)
        if handler is None:
            log.error("no handler for timer kind", extra={"kind": timer.kind, "timer_id": timer.id})
            return 1
        try:
            with session.begin_nested():
                handler(ctx, timer)
        except Exception as exc:
            _failed(ctx, timer, exc)
            return 0
    dispatcher.on_commit()
    return 1


def _failed(ctx: Context, timer: Timer, exc: Exception) -> None:
    """The handler's savepoint is rolled back: keep the timer claimed and say so, or (a database
    error, which may pass) put it back for a later pass while it has attempts left."""
    attempts = int(timer.payload.get("attempts", 0)) + 1
    error = f"{type(exc).__name__}: {exc}"[:300]
    retry = isinstance(exc, OperationalError) and attempts < MAX_ATTEMPTS
    log.error("timer failed", exc_info=exc, extra={"timer_id": timer.id, "kind": timer.kind, "attempts": attempts,
                                                    "retry": retry})
    timer.payload = {**timer.payload, "attempts": attempts, "error": error, **({} if retry else {"failed": True})}
    if retry:
        timer.done_at = None
    else:
        record(ctx, "timer.failed", timer_id=timer.id, timer_kind=timer.kind, subject_id=timer.subject_id,
               attempts=attempts, error=error)
    ctx.session.add(timer)


OUTSIDE_CALLS = {"rollback_webhook": run_rollback_webhooks, "rollout_webhook": run_rollout_webhooks,
                 "pagerduty_event": run_pagerduty_events, "statuspage_update": run_statuspage_updates}


def run_outside_calls(dispatcher: Dispatcher) -> int:
    """The calls to outside services that are due: flag webhook, PagerDuty, Statuspage (bot/outside.py).
    One look-up finds which kinds have work; most polls find none."""
    with reading(dispatcher.engine) as session:
        kinds = set(session.exec(
            select(Timer.kind).where(Timer.done_at.is_(None), Timer.due_at <= dispatcher.clock.now(),  # type: ignore[union-attr,operator]
                                     Timer.kind.in_(OUTSIDE_CALLS)).distinct()  # type: ignore[attr-defined]
        ).all())
    return sum(run(dispatcher) for kind, run in OUTSIDE_CALLS.items() if kind in kinds)


def forget_old_requests(dispatcher: Dispatcher) -> None:
    """Seen request keys are kept an hour: Slack's last retry of an event comes about 5 minutes after the
    first, and a signed request older than 5 minutes is refused by its timestamp anyway."""
    with transaction(dispatcher.engine) as session:
        session.execute(delete(SeenRequest).where(SeenRequest.seen_at < dispatcher.clock.now() - SEEN_KEPT))  # type: ignore[arg-type,operator]


class Scheduler:
    """APScheduler wakes `run_due` at the next deadline, and at least every `interval` seconds."""

    def __init__(self, dispatcher: Dispatcher, *, interval: float = 1.0) -> None:
        self.dispatcher = dispatcher
        self.probes = ProbeLoop(dispatcher)
        self.metrics = MetricsLoop(dispatcher)
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._pass_lock = threading.Lock()
        self._plan_lock = threading.Lock()
        self._passing = threading.local()
        self._waiting = 0  # passes waiting for the running one to end (guarded by _plan_lock)
        self._last_plan = 0.0
        # Nothing is brought forward while a pass runs (or waits): it plans when it ends, after it let go
        # of the lock, so it sees what was committed meanwhile. A poll that fires during a pass waits for
        # it (two instances: one running, one waiting on the lock) instead of being dropped.
        self._scheduler.add_job(self._pass, "interval", seconds=interval, id="due-work", max_instances=2,
                                coalesce=True, misfire_grace_time=None)
        # looks up the next deadline when poked (an hour is just "not by itself")
        self._scheduler.add_job(self.plan, "interval", hours=1, id="plan", max_instances=2, coalesce=True,
                                misfire_grace_time=None)
        # polls that may outlast their interval (a slow probe site, a slow flag webhook): see _poll
        for job_id, work, every in (("probes", self.probes.run_once, interval),
                                    ("edge-work", lambda: run_outside_calls(dispatcher), interval),
                                    ("metrics", self.metrics.run_once, interval),
                                    ("forget-requests", lambda: forget_old_requests(dispatcher), 60.0)):
            self._scheduler.add_job(self._poll, "interval", args=(threading.Lock(), work, job_id), seconds=every,
                                    id=job_id, max_instances=2, coalesce=True, misfire_grace_time=None)

    @staticmethod
    def _poll(running: threading.Lock, work: Callable[[], Any], what: str) -> None:
        """One turn of a poll. A turn that finds the previous one still running returns at once (left to
        APScheduler, each skipped turn would be logged as a warning); a failure (a database blip) is
        logged and the next turn tries again."""
        if not running.acquire(blocking=False):
            return
        try:
            work()
        except Exception:
            log.exception("poll failed", extra={"job": what})
        finally:
            running.release()

    def _pass(self) -> None:
        with self._plan_lock:
            self._waiting += 1
        with self._pass_lock:
            with self._plan_lock:
                self._waiting -= 1
            self._passing.on = True  # our own commits need no poke: the pass plans when it ends
            started = time.monotonic()
            try:
                n = run_due(self.dispatcher)
            except Exception:  # reading what is due failed (a database blip): the next poll retries
                log.exception("scheduler pass failed")
                n = 0
            finally:
                self._passing.on = False
            if n:
                log.info("timers run", extra={"count": n, "ms": round((time.monotonic() - started) * 1000, 1)})
        try:
            self.plan()
        except Exception:
            log.exception("planning the next pass failed")

    # -- waking at the next deadline ---------------------------------------------------
    def plan(self) -> datetime | None:
        """Bring the next pass forward to the earliest pending deadline. Returns when it will run
        (real time), or None when nothing is pending or the scheduler is not running."""
        if not self._scheduler.running:
            return None
        self._last_plan = time.monotonic()
        due = earliest_due(self.dispatcher)
        if due is None:
            return None
        # deadlines are on the launch's clock; APScheduler runs on real time (the rehearsal's clock is faster)
        wait = (due - self.dispatcher.clock.now()).total_seconds() / float(getattr(self.dispatcher.clock, "speed", 1))
        return self._bring_forward("due-work", datetime.now(UTC) + timedelta(seconds=max(wait, 0.0)))

    def poke(self) -> None:
        """This process committed something that may have created or armed a timer (the dispatcher's
        on_commit, the outbox arming the next escalation): look up the next deadline soon, in the
        scheduler's thread, never in the caller's. Pokes within POKE_GAP_S of a lookup share the next one."""
        if not self._scheduler.running or getattr(self._passing, "on", False):
            return
        gap = self._last_plan + POKE_GAP_S - time.monotonic()
        self._bring_forward("plan", datetime.now(UTC) + timedelta(seconds=max(gap, 0.0)))

    def _bring_forward(self, job_id: str, when: datetime) -> datetime | None:
        with self._plan_lock:
            if job_id == "due-work" and (self._waiting or self._pass_lock.locked()):
                return None
            job = self._scheduler.get_job(job_id)
            if job is None:
                return None
            current: Any = job.next_run_time
            if current is not None and current <= when:
                return current  # type: ignore[no-any-return]
            job.modify(next_run_time=when)
            return when

    def next_pass_at(self) -> datetime | None:
        job = self._scheduler.get_job("due-work")
        return job.next_run_time if job is not None else None

    # -- running ---------------------------------------------------------------------
    def run_once(self) -> int:
        """Every kind of due work once, in the calling thread (the shell and the rehearsal drive time)."""
        return (run_due(self.dispatcher) + self.probes.run_once() + run_outside_calls(self.dispatcher)
                + self.metrics.run_once())

    def start(self) -> None:
        self._scheduler.start()
        self.poke()  # a deadline due before the first poll (a restart) is met on time

    def wakeup(self) -> None:
        self._scheduler.wakeup()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self.probes.close()
        self.metrics.close()
