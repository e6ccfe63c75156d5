"""The scheduler's batch pass through the real app: chunks claimed in one statement and committed
together, each handler in a savepoint, exactly once across racing replicas (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import select

import bot.scheduler as scheduler
from commands.context import Context
from commands.registry import TIMERS
from db.models import AuditEvent, Incident, Launch, OutboxMessage, RoleAssignment, Timer
from tests.clockwork import race
from tests.harness import Harness


def add_launches(bot: Harness, launches: int, per_launch: int) -> list[int]:
    """Launches of their own (war rooms C0PASS<n>), each with a chain's roles and `per_launch` open
    Criticals whose escalation is due now. Returns the timer ids, in launch order."""
    now = bot.clock.now()
    timer_ids = []
    with bot.session() as s:
        for n in range(launches):
            launch = Launch(name=f"pass launch {n}", war_room=f"C0PASS{n}", timezone="UTC", created_at=now,
                            incident_seq=per_launch)
            s.add(launch)
            s.flush()
            assert launch.id is not None
            for role, user in (("commander", "U0CMD"), ("eng_oncall", "U0ENG"), ("exec", "U0EXEC")):
                s.add(RoleAssignment(launch_id=launch.id, role=role, user_id=f"{user}{n}", assigned_by="test",
                                     assigned_at=now))
            incidents = [Incident(launch_id=launch.id, number=i + 1, severity="sev1", summary=f"outage {n}.{i + 1}",
                                  declared_by="U0SCRIBE", declared_at=now - timedelta(minutes=5))
                         for i in range(per_launch)]
            s.add_all(incidents)
            s.flush()
            timers = [Timer(launch_id=launch.id, kind="escalation", subject_id=i.id, due_at=now, created_at=now,
                            payload={"level": 1, "severity": "sev1"}) for i in incidents]
            s.add_all(timers)
            s.flush()
            timer_ids += [t.id for t in timers if t.id is not None]
        s.commit()
    return timer_ids


def add_timer(bot: Harness, kind: str) -> int:
    with bot.session() as s:
        launch = s.exec(select(Launch).order_by(Launch.id)).first()
        assert launch is not None and launch.id is not None
        timer = Timer(launch_id=launch.id, kind=kind, due_at=bot.clock.now(), created_at=bot.clock.now())
        s.add(timer)
        s.commit()
        assert timer.id is not None
        return timer.id


def get_timer(bot: Harness, timer_id: int) -> Timer:
    with bot.session() as s:
        timer = s.get(Timer, timer_id)
        assert timer is not None
        return timer


@pytest.fixture
def quiet(bot: Harness) -> Harness:
    """The configured launch's own due work (T0's marks) done and delivered, so a test sees only its own."""
    bot.tick()
    bot.deliver()
    return bot


@pytest.fixture
def handler() -> Iterator[Callable[[str, Callable[[Context, Timer], None]], list[int]]]:
    """Register a handler for a timer kind of the test's own; returns the list of timer ids it was called with."""
    kinds: list[str] = []

    def register(kind: str, fn: Callable[[Context, Timer], None]) -> list[int]:
        calls: list[int] = []

        def run(ctx: Context, due: Timer) -> None:
            assert due.id is not None
            calls.append(due.id)
            fn(ctx, due)

        TIMERS[kind] = run
        kinds.append(kind)
        return calls

    yield register
    for kind in kinds:
        del TIMERS[kind]


class Statements:
    """Counts the commits and the statements that touch a table, on an engine, while active."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.commits = 0
        self.sql: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "before_cursor_execute", self._execute)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "before_cursor_execute", self._execute)

    def _commit(self, conn: Any) -> None:
        self.commits += 1

    def _execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.sql.append(statement)

    def selects_from(self, table: str) -> int:
        return sum(1 for s in self.sql if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s)


def test_many_due_timers_across_launches_are_each_done_once_in_chunks(quiet: Harness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bot = quiet
    monkeypatch.setattr(scheduler, "CHUNK_S", 30.0)  # chunks by count here (the time bound: below)
    timer_ids = add_launches(bot, launches=3, per_launch=20)
    with Statements(bot.runtime.engine) as seen:
        assert bot.tick() == 60
    assert seen.commits == 3  # 60 timers in chunks of 25: three transactions, not sixty
    # who holds which role is read once per launch per chunk, not once or more per escalation
    assert seen.selects_from("role_assignment") <= 3 * 3
    assert bot.tick() == 0
    with bot.session() as s:
        timers = s.exec(select(Timer).where(Timer.id.in_(timer_ids))).all()  # type: ignore[union-attr]
        assert all(t.done_at == bot.clock.now() for t in timers)
        incidents = s.exec(select(Incident).where(Incident.launch_id != 1)).all()
        assert len(incidents) == 60 and {i.escalations for i in incidents} == {1}
        pings = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "incident.escalation")).all()
        assert len(pings) == 60 and len({p.arms_timer_id for p in pings}) == 60
    bot.deliver()
    for n in range(3):
        posted = [p["text"] for p in bot.posts(f"C0PASS{n}")]
        assert len(posted) == 20 and all(f"<@U0ENG{n}>" in text for text in posted)
        assert sorted(int(t.split("INC-")[1].split()[0]) for t in posted) == list(range(1, 21))
    assert len(bot.events("incident.escalated")) == 60


def test_a_raising_handler_is_rolled_back_alone_and_not_retried(quiet: Harness, handler: Any) -> None:
    bot = quiet

    def explode(ctx: Context, due: Timer) -> None:
        ctx.session.add(Incident(launch_id=ctx.launch.id, number=999, severity="sev1", summary="half-done",
                                 declared_by="U0X", declared_at=ctx.now))
        ctx.session.flush()
        raise RuntimeError("boom")

    def clash(ctx: Context, due: Timer) -> None:  # fails when its savepoint is released (flush), not before
        taken = ctx.session.exec(select(Incident).order_by(Incident.id)).first()
        assert taken is not None
        ctx.session.add(Incident(launch_id=taken.launch_id, number=taken.number, severity="sev1",
                                 summary="duplicate number", declared_by="U0X", declared_at=ctx.now))

    exploded, clashed = handler("explode", explode), handler("clash", clash)
    timer_ids = add_launches(bot, launches=2, per_launch=15)
    bad = [add_timer(bot, "explode"), add_timer(bot, "clash")]
    assert bot.tick() == 30  # the 30 escalations, around the two that failed
    # tried with the chunk (no savepoints), then alone in its savepoint when the chunk ran again
    assert set(exploded) == {bad[0]} and set(clashed) == {bad[1]}
    assert 1 <= len(exploded) <= 2 and 1 <= len(clashed) <= 2
    tries = len(exploded), len(clashed)
    for _ in range(3):  # later passes do not try them again
        bot.advance(timedelta(seconds=5), deliver=False)
    assert (len(exploded), len(clashed)) == tries
    for timer_id, error in zip(bad, ("RuntimeError: boom", "IntegrityError"), strict=True):
        failed = get_timer(bot, timer_id)
        assert failed.done_at is not None and failed.payload["failed"] is True
        assert failed.payload["error"].startswith(error) and failed.payload["attempts"] == 1
    assert {e.payload["timer_id"] for e in bot.events("timer.failed")} == set(bad)
    with bot.session() as s:
        assert s.exec(select(Incident).where(Incident.summary.in_(["half-done", "duplicate number"]))).all() == []  # type: ignore[attr-defined]
        assert all(t.done_at is not None for t in s.exec(select(Timer).where(Timer.id.in_(timer_ids))).all())  # type: ignore[union-attr]
    assert len(bot.events("incident.escalated")) == 30


def test_a_database_error_in_a_handler_is_retried_a_few_times_then_failed(quiet: Harness, handler: Any) -> None:
    bot = quiet

    def deadlock(ctx: Context, due: Timer) -> None:
        raise OperationalError("SELECT … FOR UPDATE", {}, Exception("deadlock detected"))

    calls = handler("deadlock", deadlock)
    timer_id = add_timer(bot, "deadlock")
    add_launches(bot, launches=1, per_launch=3)
    assert bot.tick() == 3
    retried = get_timer(bot, timer_id)
    assert retried.done_at is None and retried.payload["attempts"] == 1 and "failed" not in retried.payload
    assert bot.tick() == 0 and get_timer(bot, timer_id).done_at is None
    assert bot.tick() == 0
    failed = get_timer(bot, timer_id)
    assert failed.done_at is not None and failed.payload["failed"] is True and failed.payload["attempts"] == 3
    for _ in range(3):
        bot.tick()
    # each pass tries it with its chunk, then alone in a savepoint (which counts the attempt)
    assert calls == [timer_id] * 2 * scheduler.MAX_ATTEMPTS
    assert [e.payload["attempts"] for e in bot.events("timer.failed")] == [3]


def test_a_chunk_that_runs_out_of_time_leaves_the_rest_to_the_next(quiet: Harness, handler: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bot = quiet
    monkeypatch.setattr(scheduler, "CHUNK_S", 0.05)
    calls = handler("slow", lambda ctx, due: time.sleep(0.03))
    slow = [add_timer(bot, "slow") for _ in range(6)]
    with Statements(bot.runtime.engine) as seen:
        assert bot.tick() == 6
    assert sorted(calls) == slow  # each once, none lost between chunks
    assert seen.commits >= 3  # no chunk held the write lock for all six
    assert all(get_timer(bot, t).done_at is not None for t in slow)


def test_commands_get_the_write_lock_between_chunks(quiet: Harness, handler: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bot = quiet
    monkeypatch.setattr(scheduler, "CHUNK", 2)
    started = threading.Event()

    def slow(ctx: Context, due: Timer) -> None:
        started.set()
        time.sleep(0.1)

    calls = handler("slow", slow)
    for _ in range(10):
        add_timer(bot, "slow")
    answered: list[float] = []

    def command() -> None:
        started.wait(5)
        t = time.monotonic()
        r = bot.slash("/incident", "sev2 slow search", user="U0SCRIBE")
        assert "Declared INC-" in r.json()["text"]
        answered.append(time.monotonic() - t)

    thread = threading.Thread(target=command)
    thread.start()
    began = time.monotonic()
    assert bot.tick() == 10
    pass_s = time.monotonic() - began
    thread.join(10)
    assert len(calls) == 10 and pass_s >= 1.0
    assert answered and answered[0] < pass_s / 2  # it waited for a chunk (≤ 0.2 s), not for the pass (1 s)


def test_racing_replicas_run_a_batch_exactly_once(quiet: Harness) -> None:
    bot = quiet
    add_launches(bot, launches=4, per_launch=20)
    results = race(bot.env.database_url, bot.config, bot.clock, racers=3)
    assert sum(results) == 80  # every claim went to exactly one racer
    with bot.session() as s:
        incidents = s.exec(select(Incident).where(Incident.launch_id != 1)).all()
        assert len(incidents) == 80 and {i.escalations for i in incidents} == {1}
        escalated = s.exec(select(AuditEvent).where(AuditEvent.kind == "incident.escalated")).all()
        assert sorted(e.incident_id for e in escalated) == sorted(i.id for i in incidents)
    bot.deliver()
    posted = [p for n in range(4) for p in bot.posts(f"C0PASS{n}")]
    assert len(posted) == 80
    assert len({p["metadata"]["event_payload"]["outbox_id"] for p in posted}) == 80
