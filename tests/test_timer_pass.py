"""The scheduler's pass through the real app: each due timer claimed and run once, its handler in a
savepoint, a failing one marked failed alone, exactly once across racing replicas (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
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


def test_many_due_timers_across_launches_are_each_done_once(quiet: Harness) -> None:
    bot = quiet
    timer_ids = add_launches(bot, launches=3, per_launch=20)
    assert bot.tick() == 60
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
    assert exploded == [bad[0]] and clashed == [bad[1]]  # each run once
    for _ in range(3):  # later passes do not try them again
        bot.advance(timedelta(seconds=5), deliver=False)
    assert exploded == [bad[0]] and clashed == [bad[1]]
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
    assert calls == [timer_id] * scheduler.MAX_ATTEMPTS  # once a pass, then no more
    assert [e.payload["attempts"] for e in bot.events("timer.failed")] == [3]


def test_a_command_is_answered_while_a_long_pass_runs(quiet: Harness, handler: Any) -> None:
    bot = quiet
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
    assert answered and answered[0] < pass_s / 2  # it waited for a timer (0.1 s), not for the pass (1 s)


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
