"""Probes as a monitor, against a local HTTP server: fast, slow, failing, timing out, unreachable."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.dispatch import Dispatcher
from bot.probes import ProbeLoop
from bot.scheduler import run_due
from commands.config import parse_config
from db.models import ProbeResult, ProbeState
from db.session import make_engine
from tests.clockwork import live_timers, texts
from tests.conftest import START, TEST_CONFIG
from tests.harness import Harness
from tests.http_standin import HttpStandin, Reply, Request
from tests.standin import SlackStandin
from tests.times import at


class Site(HttpStandin):
    """A local HTTP server whose pages answer as told: `mode[path]` = ok | slow | hang | fail."""

    def __init__(self) -> None:
        super().__init__()
        self.mode: dict[str, str] = {}
        self.sessions: Any = {"active_sessions": 42}

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def hits(self) -> dict[str, int]:
        return dict(Counter(c.path.split("?")[0] for c in self.calls))

    def answer(self, request: Request) -> Reply:
        path = request.path.split("?")[0]
        mode = self.mode.get(path, "ok")
        return Reply(500 if mode == "fail" else 200, self.sessions if path == "/sessions" else {"ok": True},
                     delay={"slow": 0.25, "hang": 1.6}.get(mode, 0.0))


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as s:
        yield s


def probe_config(site: Site) -> dict[str, Any]:
    return {**TEST_CONFIG, "run_of_show": [], "probes": [
        {"name": "app", "url": f"{site.url}/app", "threshold_ms": 150, "every": "1m", "timeout": "1s"},
        {"name": "api", "url": f"{site.url}/api", "every": "5m", "timeout": "1s"},
        {"name": "sessions", "url": f"{site.url}/sessions", "metric": "engagement", "every": "1m"},
    ]}


@pytest.fixture
def watched(standin: SlackStandin, database_url: str, site: Site) -> Iterator[Harness]:
    h = Harness(standin, database_url, parse_config(probe_config(site)), ManualClock(START))
    yield h
    h.close()


def check(bot: Harness, advance: timedelta | None = None) -> int:
    if advance:
        bot.clock.advance(advance)
    n = bot.runtime.scheduler.probes.run_once()
    bot.deliver()
    return n


def results(bot: Harness, probe: str) -> list[ProbeResult]:
    with bot.session() as s:
        return list(s.exec(select(ProbeResult).where(ProbeResult.probe == probe).order_by(ProbeResult.id)).all())


def alerts(bot: Harness) -> list[dict[str, Any]]:
    return [p for p in bot.posts("C0WARROOM") if p["text"].startswith(":warning: Probe")]


def test_fast_probes_are_stored_and_feed_the_heartbeat(watched: Harness) -> None:
    assert check(watched) == 3
    app = results(watched, "app")
    assert len(app) == 1 and app[0].ok and app[0].status_code == 200 and 0 < (app[0].latency_ms or 0) < 150
    assert results(watched, "sessions")[0].value == 42
    watched.slash("/heartbeat", "", user="U0ENG")
    watched.deliver()
    beat = texts(watched, "Status Update")[0]
    assert "Latency: app " in beat and " ms, api " in beat and "failed" not in beat
    assert "Operator engagement: 42 active sessions." in beat
    assert alerts(watched) == []


def test_each_probe_on_its_own_interval(watched: Harness, site: Site) -> None:
    check(watched)
    assert check(watched) == 0  # nothing due a moment later: no second fetch
    for _ in range(10):
        check(watched, timedelta(minutes=1))
    assert len(results(watched, "app")) == 11 and len(results(watched, "sessions")) == 11
    assert len(results(watched, "api")) == 3  # at 0, 5m, 10m
    assert site.hits["/app"] == 11 and site.hits["/api"] == 3
    assert len(live_timers(watched, "probe")) == 3


def test_slow_probe_alerts_once_then_recovers_once(watched: Harness, site: Site) -> None:
    site.mode["/app"] = "slow"
    check(watched)
    assert len(alerts(watched)) == 1
    alert = alerts(watched)[0]
    assert "*app* is slow" in alert["text"] and "150 ms threshold" in alert["text"]
    button = alert["blocks"][1]["elements"][0]
    assert button["action_id"] == "probe_declare" and button["value"] == "app"
    for _ in range(3):
        check(watched, timedelta(minutes=1))
    assert len(alerts(watched)) == 1
    site.mode["/app"] = "ok"
    check(watched, timedelta(minutes=1))
    check(watched, timedelta(minutes=1))
    recovered = texts(watched, "recovered")
    assert len(recovered) == 1 and "*app* recovered" in recovered[0] and f"in trouble since {at('10:00')}" in recovered[0]
    assert [e.kind for e in watched.events() if e.kind.startswith("probe.")] == ["probe.alerted", "probe.recovered"]


def test_failing_probe_alerts_after_three_failures(watched: Harness, site: Site) -> None:
    site.mode["/app"] = "fail"
    check(watched)
    check(watched, timedelta(minutes=1))
    assert alerts(watched) == []
    check(watched, timedelta(minutes=1))
    assert len(alerts(watched)) == 1 and "failed 3 checks in a row: HTTP 500" in alerts(watched)[0]["text"]
    check(watched, timedelta(minutes=1))
    assert len(alerts(watched)) == 1
    stored = results(watched, "app")
    assert [r.ok for r in stored] == [False] * 4 and all(r.error == "HTTP 500" for r in stored)
    watched.slash("/heartbeat", "", user="U0ENG")
    watched.deliver()
    assert "Latency: app failed (HTTP 500)" in texts(watched, "Status Update")[0]


def test_timeout_and_unreachable_are_failures_not_zero(standin: SlackStandin, database_url: str, site: Site) -> None:
    site.mode["/app"] = "hang"
    raw = {**TEST_CONFIG, "run_of_show": [], "probes": [
        {"name": "app", "url": f"{site.url}/app", "timeout": "1s"},
        {"name": "gone", "url": "http://127.0.0.1:9/nothing", "timeout": "1s"},
    ]}
    h = Harness(standin, database_url, parse_config(raw), ManualClock(START))
    try:
        started = time.monotonic()
        assert check(h) == 2
        assert time.monotonic() - started < 1.5  # concurrent, with a short timeout
        app, gone = results(h, "app")[0], results(h, "gone")[0]
        assert not app.ok and app.latency_ms is None and app.error == "timeout after 1s"
        assert not gone.ok and gone.latency_ms is None and gone.error.startswith("unreachable")  # type: ignore[union-attr]
    finally:
        h.close()


def test_flapping_probe_does_not_storm(watched: Harness, site: Site) -> None:
    for minute in range(13):
        site.mode["/app"] = "slow" if minute % 2 == 0 else "ok"
        check(watched, timedelta(minutes=1) if minute else None)
    # alert at 0, recovery at 1; then quiet for 10 minutes: slow at 2…10 says nothing; the next alert at 12
    kinds = [(e.kind, e.ts) for e in watched.events() if e.kind.startswith("probe.")]
    assert [k for k, _ in kinds] == ["probe.alerted", "probe.recovered", "probe.alerted"]
    assert kinds[2][1] - kinds[1][1] >= timedelta(minutes=10)
    assert len(alerts(watched)) == 2


def test_declare_button_prefills_an_incident_once(watched: Harness, site: Site) -> None:
    site.mode["/app"] = "fail"
    for i in range(3):
        check(watched, timedelta(minutes=1) if i else None)
    watched.block_actions("probe_declare", "app", user="U0DEVOPS")
    watched.block_actions("probe_declare", "app", user="U0ENG")  # a second click
    replies = [r["text"] for r in watched.wait_for_responses(2)]
    assert "Declared INC-1 from the app probe." in replies and "INC-1 is already open for the app probe." in replies
    incidents = watched.incidents()
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.source == "probe:app" and inc.severity == "sev1" and "app probe failing: HTTP 500" in inc.summary
    watched.deliver()
    assert texts(watched, "INCIDENT [Critical]: app probe failing")
    watched.block_actions("probe_declare", "nope", user="U0ENG")
    assert "not in the config" in watched.wait_for_responses(3)[-1]["text"]


def test_engagement_probe_without_a_number_fails(watched: Harness, site: Site) -> None:
    site.sessions = {"hello": "world"}
    check(watched)
    stored = results(watched, "sessions")[0]
    assert not stored.ok and "no active_sessions" in (stored.error or "")


def test_two_loops_racing_check_each_probe_once(watched: Harness, site: Site) -> None:
    check(watched)
    watched.clock.advance(timedelta(minutes=5))
    loops = [ProbeLoop(Dispatcher(engine=make_engine(watched.env.database_url), config=watched.config,
                                  clock=watched.clock)) for _ in range(2)]
    barrier = threading.Barrier(2)
    counts = [0, 0]

    def go(i: int) -> None:
        barrier.wait()
        counts[i] = loops[i].run_once()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for loop in loops:
        loop.close()
        loop.dispatcher.engine.dispose()
    assert sum(counts) == 3
    assert site.hits == {"/app": 2, "/api": 2, "/sessions": 2}
    with watched.session() as s:
        assert len(s.exec(select(ProbeState)).all()) == 3


def test_scheduler_pass_leaves_probe_checks_to_the_probe_loop(watched: Harness) -> None:
    check(watched)
    watched.clock.advance(timedelta(minutes=10))
    run_due(watched.runtime.dispatcher)
    assert len(live_timers(watched, "probe")) == 3  # still pending: only the probe loop claims them
