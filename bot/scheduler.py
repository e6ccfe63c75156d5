"""Waking up for due work. The database says what is due; APScheduler only wakes us.

Every deadline is a Timer row. A pass selects the due ones and, for each, in one
transaction, claims it (`UPDATE timer SET done_at = now WHERE id = … AND done_at
IS NULL`) and does its work: a crash rolls both back, a second replica's claim
matches no row. What fell due while the bot was down is done at the next pass.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from bot.dispatch import Dispatcher
from bot.flag_webhook import run_rollback_webhooks
from bot.probes import ProbeLoop
from commands.context import Context
from commands.registry import TIMERS
from db.models import Launch, Timer
from db.session import reading, write_lock

log = logging.getLogger("warroom.scheduler")
BATCH = 500
# Timer kinds whose work is network I/O: never run inside the claiming transaction by run_due, but by
# their own runner (a separate job, so a slow remote never delays escalations).
EDGE_KINDS = frozenset({"rollback_webhook", "probe"})  # probe: bot/probes.py


def due_timers(dispatcher: Dispatcher, now: datetime) -> list[tuple[int, int]]:
    with reading(dispatcher.engine) as session:
        rows = session.exec(
            select(Timer.id, Timer.launch_id).where(Timer.done_at.is_(None), Timer.due_at <= now,  # type: ignore[union-attr]
                                                    Timer.kind.not_in(EDGE_KINDS))  # type: ignore[attr-defined]
            .order_by(Timer.due_at, Timer.id).limit(BATCH)  # type: ignore[arg-type]
        ).all()
        session.rollback()
    return [(r[0], r[1]) for r in rows]


def run_due(dispatcher: Dispatcher) -> int:
    """One pass over due work. Returns how many timers this process claimed and ran.

    Each timer is claimed and run in its own transaction; the pass keeps one
    connection for all of them (with SQLite's NullPool a connection per
    transaction costs more than the work itself).
    """
    due = due_timers(dispatcher, dispatcher.clock.now())
    if not due:
        return 0
    done = 0
    with dispatcher.engine.connect() as connection:
        for timer_id, launch_id in due:
            try:
                if _run_one(dispatcher, connection, timer_id, launch_id):
                    done += 1
            except Exception:
                log.exception("timer failed", extra={"timer_id": timer_id})
                if connection.in_transaction():
                    connection.rollback()
    return done


def _run_one(dispatcher: Dispatcher, connection: Connection, timer_id: int, launch_id: int) -> bool:
    with write_lock(dispatcher.engine), Session(bind=connection, expire_on_commit=False) as session:
        now = dispatcher.clock.now()
        launch = session.get(Launch, launch_id)
        assert launch is not None
        ctx = Context(session=session, now=now, config=dispatcher.config, user="warroom", launch=launch)
        won = _claim_and_run(ctx, timer_id)
        session.commit()
    dispatcher.on_commit()
    return won


def _claim_and_run(ctx: Context, timer_id: int) -> bool:
    won = ctx.session.exec(  # type: ignore[call-overload]
        update(Timer).where(Timer.id == timer_id, Timer.done_at.is_(None), Timer.due_at <= ctx.now)  # type: ignore[union-attr]
        .values(done_at=ctx.now)
    ).rowcount
    if won != 1:
        return False
    timer = ctx.session.get(Timer, timer_id)
    assert timer is not None
    ctx.session.refresh(timer)
    handler = TIMERS.get(timer.kind)
    if handler is None:
        log.error("no handler for timer kind", extra={"kind": timer.kind, "timer_id": timer_id})
        return True
    handler(ctx, timer)
    return True


class Scheduler:
    """APScheduler wakes `run_due` every `interval` seconds (due work is acted on within 2 s)."""

    def __init__(self, dispatcher: Dispatcher, *, interval: float = 1.0) -> None:
        self.dispatcher = dispatcher
        self.probes = ProbeLoop(dispatcher)
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._scheduler.add_job(self._pass, "interval", seconds=interval, id="due-work", max_instances=1,
                                coalesce=True, misfire_grace_time=None)
        self._scheduler.add_job(self._probe_pass, "interval", seconds=interval, id="probes", max_instances=1,
                                coalesce=True, misfire_grace_time=None)
        self._scheduler.add_job(self._edge_pass, "interval", seconds=interval, id="edge-work", max_instances=1,
                                coalesce=True, misfire_grace_time=None)

    def _edge_pass(self) -> None:
        try:
            run_rollback_webhooks(self.dispatcher)
        except Exception:
            log.exception("edge work failed")

    def _pass(self) -> None:
        started = time.monotonic()
        n = run_due(self.dispatcher)
        if n:
            log.info("timers run", extra={"count": n, "ms": round((time.monotonic() - started) * 1000, 1)})

    def _probe_pass(self) -> None:
        try:
            self.probes.run_once()
        except Exception:  # a database blip must not stop the probes for good
            log.exception("probe pass failed")

    def run_once(self) -> int:
        """Every kind of due work once, in the calling thread (the shell and the rehearsal drive time)."""
        return run_due(self.dispatcher) + self.probes.run_once() + run_rollback_webhooks(self.dispatcher)

    def start(self) -> None:
        self._scheduler.start()

    def wakeup(self) -> None:
        self._scheduler.wakeup()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self.probes.close()
