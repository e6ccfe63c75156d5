"""The scheduler acts when a deadline falls due, not on its next poll: it looks up the earliest
pending deadline after each pass, at start, when a command commits and when the outbox arms the
next escalation. The poll here is 30 s, so only a brought-forward pass can meet these deadlines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import FastClock, ManualClock
from bot.dispatch import Dispatcher
from bot.probes import ProbeLoop
from bot.scheduler import Scheduler
from commands.config import parse_config
from db.models import Timer
from tests.clockwork import live_timers, wait_for
from tests.conftest import START, TEST_CONFIG
from tests.harness import Harness
from tests.standin import SlackStandin

POLL_S = 30.0
FAST = {**TEST_CONFIG, "severities": {"sev1": {"name": "Critical", "ack_within": "1s",
                                               "escalate_to": ["commander", "eng_oncall", "exec"]}}}


def seconds_until(when: datetime | None) -> float:
    assert when is not None
    return (when - datetime.now(UTC)).total_seconds()


def settled(bot: Harness, scheduler: Scheduler) -> None:
    """Started, it looked up the next deadline (T0's marks, due now), ran them at once rather than in
    30 s, and planned the next one (T+15m: far off)."""
    now = scheduler.dispatcher.clock.now()
    wait_for("the marks due at start", lambda: all(t.due_at > now for t in live_timers(bot, "mark")), 3)
    wait_for("the next pass planned", lambda: seconds_until(scheduler.next_pass_at()) > 5, 1)


@pytest.fixture
def woken(standin: SlackStandin, database_url: str) -> Iterator[Harness]:
    """The real app with its scheduler running (polling every 30 s); the test delivers the outbox."""
    h = Harness(standin, database_url, parse_config(FAST), ManualClock(START), scheduler_interval=POLL_S)
    h.runtime.scheduler.start()
    try:
        settled(h, h.runtime.scheduler)
        assert [e.payload["label"] for e in h.events("launch.mark")] == ["T0"]
        yield h
    finally:
        h.runtime.scheduler.stop()
        h.close()


def escalations(bot: Harness) -> int:
    return len(bot.events("incident.escalated"))


def test_a_deadline_a_command_sets_is_met_on_time(woken: Harness) -> None:
    bot = woken
    r = bot.slash("/incident", "sev1 checkout 500s", user="U0SCRIBE")
    assert "Declared INC-1" in r.json()["text"]
    # the declaration's commit poked the scheduler: its next pass is at the deadline, 1 s away
    due_in = wait_for("the pass brought forward", lambda: (s := seconds_until(bot.runtime.scheduler.next_pass_at()))
                      < 2 and s, 1)
    assert 0.5 < due_in < 1.1
    bot.clock.advance(timedelta(seconds=1))  # the manual clock reaches the deadline; real time follows
    began = time.monotonic()
    wait_for("the escalation", lambda: escalations(bot) == 1, 2.5)
    assert time.monotonic() - began < 2  # by the brought-forward pass, not the 30 s poll


def test_the_next_level_armed_by_the_posted_ping_is_met_on_time(woken: Harness) -> None:
    bot = woken
    bot.slash("/incident", "sev1 checkout 500s", user="U0SCRIBE")
    bot.clock.advance(timedelta(seconds=1))
    wait_for("the first escalation", lambda: escalations(bot) == 1, 2.5)
    armed = live_timers(bot, "escalation")
    assert len(armed) == 1 and armed[0].due_at is None  # dormant until the ping is posted
    bot.deliver()  # the ping lands: the outbox arms the next level (due 1 s from now) and pokes the scheduler
    assert live_timers(bot, "escalation")[0].due_at == bot.clock.now() + timedelta(seconds=1)
    wait_for("the pass brought forward", lambda: seconds_until(bot.runtime.scheduler.next_pass_at()) < 2, 1)
    bot.clock.advance(timedelta(seconds=1))
    wait_for("the second escalation", lambda: escalations(bot) == 2, 2.5)
    assert [e.payload["user"] for e in bot.events("incident.escalated")] == ["U0ENG", "U0EXEC"]


def test_after_a_pass_it_plans_the_next_deadline(bot: Harness) -> None:
    scheduler = Scheduler(bot.runtime.dispatcher, interval=POLL_S)
    scheduler.start()
    try:
        settled(bot, scheduler)
        with bot.session() as s:  # another replica's timer: no poke here
            s.add(Timer(launch_id=1, kind="wake-test", created_at=bot.clock.now(),
                        due_at=bot.clock.now() + timedelta(seconds=0.7)))
            s.commit()
        assert seconds_until(scheduler.next_pass_at()) > 5
        scheduler._pass()  # what a poll does: run what is due, then plan
        assert 0.3 < seconds_until(scheduler.next_pass_at()) < 0.8
    finally:
        scheduler.stop()


def test_the_rehearsal_clock_maps_deadlines_to_real_time(bot: Harness) -> None:
    clock = FastClock(START, speed=60)  # a minute of launch time per real second
    scheduler = Scheduler(Dispatcher(engine=bot.runtime.engine, config=bot.config, clock=clock), interval=POLL_S)
    scheduler.start()
    try:
        settled(bot, scheduler)
        with bot.session() as s:
            s.add(Timer(launch_id=1, kind="wake-test", created_at=clock.now(),
                        due_at=clock.now() + timedelta(minutes=2)))
            s.commit()
        when = scheduler.plan()
        assert 1.5 < seconds_until(when) < 2.05  # two launch minutes: two real seconds
    finally:
        scheduler.stop()


def test_a_poll_that_outlasts_its_interval_is_not_run_twice_at_once_nor_logged(
        standin: SlackStandin, database_url: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe poll runs every 0.2 s here and one turn takes 0.6 s (a slow probe site): turns that
    come meanwhile return at once, nothing overlaps, and APScheduler logs no skipped run. (At 0.05 s, a
    loaded machine was slower to run the turn that returns at once than the interval.)"""
    running: list[int] = []
    overlaps: list[int] = []
    turns: list[float] = []

    def slow_probe_pass() -> None:
        if running:
            overlaps.append(1)
        running.append(1)
        turns.append(time.monotonic())
        time.sleep(0.6)
        running.pop()

    monkeypatch.setattr(ProbeLoop, "run_once", lambda self: slow_probe_pass())
    h = Harness(standin, database_url, parse_config(TEST_CONFIG), ManualClock(START), scheduler_interval=0.2)
    caplog.set_level("WARNING", logger="apscheduler")
    h.runtime.scheduler.start()
    try:
        wait_for("three slow turns", lambda: len(turns) >= 3, 10)
    finally:
        h.runtime.scheduler.stop()
        h.close()
    assert not overlaps
    assert all(b - a >= 0.6 for a, b in zip(turns, turns[1:], strict=False)), turns
    assert not [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
