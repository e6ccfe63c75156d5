"""Helpers shared by the clock tests (escalation, heartbeat, run-of-show, probes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import select

from bot.clock import Clock
from bot.dispatch import Dispatcher
from bot.scheduler import run_due
from commands.config import Config
from db.models import Launch, RoleAssignment, Timer
from db.session import make_engine
from tests.harness import Harness

WAR_ROOM = "C0WARROOM"


def channel_posts(bot: Harness, channel: str = WAR_ROOM) -> list[dict[str, Any]]:
    """Messages shown in the channel itself: top-level posts and thread replies broadcast to it."""
    return bot.standin.channel_posts(channel)


def thread_posts(bot: Harness, channel: str = WAR_ROOM) -> list[dict[str, Any]]:
    return bot.standin.thread_posts(channel)


def pings(bot: Harness, *, thread: bool = False) -> list[str]:
    """Escalation pings, as text, in the war room (or its threads)."""
    posts = thread_posts(bot) if thread else channel_posts(bot)
    return [p["text"] for p in posts if "escalat" in p["text"] and "INC-" in p["text"]]


def texts(bot: Harness, needle: str, channel: str = WAR_ROOM) -> list[str]:
    return [p["text"] for p in channel_posts(bot, channel) if needle in p["text"]]


def wait_for(what: str, fn: Callable[[], Any], timeout: float) -> Any:
    """Poll fn (real time) until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def set_role(bot: Harness, role: str, user: str | None, now: datetime) -> None:
    """A role change as /role stores it: a new RoleAssignment row."""
    with bot.session() as s:
        launch = s.exec(select(Launch)).first()
        assert launch is not None and launch.id is not None
        s.add(RoleAssignment(launch_id=launch.id, role=role, user_id=user, assigned_by="U0COMMANDER",
                             assigned_at=now))
        s.commit()


def timers(bot: Harness, kind: str) -> list[Timer]:
    with bot.session() as s:
        return list(s.exec(select(Timer).where(Timer.kind == kind).order_by(Timer.id)).all())


def live_timers(bot: Harness, kind: str) -> list[Timer]:
    return [t for t in timers(bot, kind) if t.done_at is None]


def race(database_url: str, config: Config, clock: Clock, racers: int = 2) -> list[int]:
    """Racers, each with its own engine (as separate replicas are), run one scheduler pass at once."""
    dispatchers = [Dispatcher(engine=make_engine(database_url), config=config, clock=clock) for _ in range(racers)]
    barrier = threading.Barrier(racers)
    results = [0] * racers
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            barrier.wait()
            results[i] = run_due(dispatchers[i])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for d in dispatchers:
        d.engine.dispose()
    assert not errors, errors
    return results
