"""The status heartbeat: its chain from T0, its figures, and /heartbeat for anyone and the commander."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from bot.clock import ManualClock
from commands.config import parse_config
from db.models import ProbeResult
from tests.clockwork import live_timers, race, set_role, texts
from tests.conftest import START, TEST_CONFIG
from tests.harness import Harness
from tests.standin import SlackStandin
from tests.times import at

PROBES = [
    {"name": "app", "url": "http://127.0.0.1:9/app", "threshold_ms": 300},
    {"name": "api", "url": "http://127.0.0.1:9/api"},
    {"name": "sessions", "url": "http://127.0.0.1:9/sessions", "metric": "engagement"},
]


def beats(bot: Harness) -> list[str]:
    return texts(bot, "Status Update")


@pytest.fixture
def probed(standin: SlackStandin, database_url: str) -> Iterator[Harness]:
    h = Harness(standin, database_url, parse_config({**TEST_CONFIG, "probes": PROBES}), ManualClock(START))
    yield h
    h.close()


def add_result(bot: Harness, probe: str, **values: Any) -> None:
    with bot.session() as s:
        s.add(ProbeResult(launch_id=1, probe=probe, checked_at=bot.clock.now(), **values))
        s.commit()


def test_t0_starts_a_heartbeat_every_30m_for_4h(bot: Harness) -> None:
    bot.tick()
    bot.deliver()
    assert texts(bot, "is now live in production")
    for _ in range(10):
        bot.advance(timedelta(minutes=30))
    posted = beats(bot)
    assert len(posted) == 8  # T+30m … T+4h
    assert all(b.startswith("Status Update – Time ") and "Incidents open: 0" in b for b in posted)
    assert f"Time {at('10:30')}." in posted[0] and f"Time {at('14:00')}." in posted[-1]
    assert "Last scheduled heartbeat" in posted[-1] and "Last scheduled" not in posted[-2]
    assert live_timers(bot, "heartbeat") == []


def test_heartbeat_figures(bot: Harness) -> None:
    bot.tick()
    bot.slash("/incident", "sev1 checkout 500s", user="U0SCRIBE")
    bot.slash("/incident", "sev2 search slow", user="U0ENG")
    bot.slash("/incident", "sev3 typo", user="U0ENG")
    bot.slash("/incident", "resolve INC-3", user="U0COMMANDER")
    bot.event({"type": "message", "user": "U0OPERATOR1", "channel": "C0WARROOM", "text": "hello", "ts": "1.1"},
              event_id="Ev1")
    bot.event({"type": "message", "user": "U0OPERATOR1", "channel": "C0WARROOM", "text": "again", "ts": "1.2"},
              event_id="Ev2")
    bot.advance(timedelta(minutes=30))
    beat = beats(bot)[0]
    assert "Incidents open: 2 (INC-1 Critical, INC-2 High)." in beat
    assert "Latency: no probe configured." in beat
    # U0SCRIBE, U0ENG, U0COMMANDER used the bot; U0OPERATOR1 wrote twice in the war room
    assert "Operator engagement: 4 active sessions" in beat
    assert f"Next checkpoint {at('11:00')} (T+1h)." in beat


def test_latency_from_probes_failed_is_never_zero(probed: Harness) -> None:
    probed.tick()
    probed.deliver()
    r = probed.slash("/heartbeat", "", user="U0ENG")
    assert "posted" in r.json()["text"]
    probed.deliver()
    assert "Latency: app not measured yet, api not measured yet." in beats(probed)[-1]
    add_result(probed, "app", ok=True, latency_ms=123.4, status_code=200)
    add_result(probed, "api", ok=False, error="timeout after 5s")
    add_result(probed, "sessions", ok=True, latency_ms=12, status_code=200, value=57)
    probed.slash("/heartbeat", "", user="U0ENG")
    probed.deliver()
    beat = beats(probed)[-1]
    assert "Latency: app 123 ms, api failed (timeout after 5s)." in beat
    assert " 0 ms" not in beat
    assert "Operator engagement: 57 active sessions." in beat
    add_result(probed, "app", ok=True, latency_ms=912, status_code=200)
    add_result(probed, "sessions", ok=False, error="HTTP 503", status_code=503)
    probed.slash("/heartbeat", "", user="U0ENG")
    probed.deliver()
    beat = beats(probed)[-1]
    assert "app 912 ms (over its 300 ms threshold)" in beat
    assert "Operator engagement: 1 active sessions (people active in the last 30m)" in beat  # the probe failed


def test_single_probe_reads_like_the_seed(standin: SlackStandin, database_url: str) -> None:
    h = Harness(standin, database_url, parse_config({**TEST_CONFIG, "probes": PROBES[:1]}), ManualClock(START))
    try:
        add_result(h, "app", ok=True, latency_ms=87.0, status_code=200)
        h.slash("/heartbeat", "", user="U0ENG")
        h.deliver()
        assert "Latency: 87 ms." in beats(h)[-1]
        add_result(h, "app", ok=False, status_code=502, error="HTTP 502")
        h.slash("/heartbeat", "", user="U0ENG")
        h.deliver()
        assert "Latency: failed (HTTP 502)." in beats(h)[-1]
    finally:
        h.close()


def test_anyone_posts_one_now_without_moving_the_chain(bot: Harness) -> None:
    bot.tick()
    bot.advance(timedelta(minutes=10))
    r = bot.slash("/heartbeat", "", user="U0OPERATOR9")
    assert r.json()["text"] == "Heartbeat posted in the war room."
    bot.deliver()
    assert len(beats(bot)) == 1 and "<@U0OPERATOR9>" in beats(bot)[0]
    assert live_timers(bot, "heartbeat")[0].due_at == START + timedelta(minutes=30)


def test_pause_resume_and_cadence(bot: Harness) -> None:
    bot.tick()
    bot.advance(timedelta(minutes=30))
    assert len(beats(bot)) == 1
    r = bot.slash("/heartbeat", "pause")
    assert r.json()["text"] == "Heartbeat paused."
    assert "already paused" in bot.slash("/heartbeat", "pause").json()["text"]
    bot.advance(timedelta(hours=1))
    assert len(beats(bot)) == 1 and texts(bot, "Heartbeat paused by <@U0COMMANDER>")
    r = bot.slash("/heartbeat", "resume")
    assert f"next one is due at {at('12:00')}" in r.json()["text"]
    assert "already running" in bot.slash("/heartbeat", "resume").json()["text"]
    r = bot.slash("/heartbeat", "every 15m")
    assert "every 15m" in r.json()["text"] and f"{at('11:45')}" in r.json()["text"]
    for _ in range(20):  # 5h: resumed, it runs past heartbeat.for (T+4h)
        bot.advance(timedelta(minutes=15))
    assert len(beats(bot)) == 21
    assert f"Time {at('16:30')}." in beats(bot)[-1]
    events = [e.kind for e in bot.events() if e.kind.startswith("heartbeat.") and e.kind != "heartbeat.posted"]
    assert events == ["heartbeat.started", "heartbeat.paused", "heartbeat.resumed", "heartbeat.cadence_changed"]


def test_cadence_before_the_heartbeat_runs_applies_at_start(bot: Harness) -> None:
    bot.slash("/heartbeat", "every 10m")
    assert live_timers(bot, "heartbeat") == []
    bot.tick()  # T0: starts at the new cadence
    assert live_timers(bot, "heartbeat")[0].due_at == START + timedelta(minutes=10)


def test_restart_skips_missed_beats_and_says_late(bot: Harness) -> None:
    bot.tick()
    bot.deliver()
    bot.close()
    bot.clock.advance(timedelta(minutes=100))  # 10:00 -> 11:40: beats at 10:30, 11:00, 11:30 missed
    second = Harness(bot.standin, bot.env.database_url, bot.config, bot.clock)
    try:
        second.tick()
        second.deliver()
        assert len(beats(second)) == 1 and "1h10m late" in texts(second, "Status Update")[0]
        assert live_timers(second, "heartbeat")[0].due_at == START + timedelta(hours=2)
        second.advance(timedelta(minutes=20))
        assert len(beats(second)) == 2
    finally:
        second.close()


def test_two_racers_post_one_heartbeat(bot: Harness) -> None:
    bot.tick()
    bot.clock.advance(timedelta(minutes=30))
    race(bot.env.database_url, bot.config, bot.clock, racers=3)
    bot.deliver()
    assert len(beats(bot)) == 1
    assert len(live_timers(bot, "heartbeat")) == 1


def test_wrong_role_is_refused_naming_the_commander(bot: Harness) -> None:
    for text in ("pause", "resume", "every 15m"):
        r = bot.slash("/heartbeat", text, user="U0ENG")
        assert "The commander is <@U0COMMANDER>" in r.json()["text"]
    assert len(bot.events("command.refused")) == 3
    bot.deliver()
    assert bot.posts() == []
    set_role(bot, "commander", None, bot.clock.now())
    r = bot.slash("/heartbeat", "pause", user="U0COMMANDER")
    assert "Nobody holds the commander role" in r.json()["text"]


BAD = ["every", "every 5 minutes", "every 10s", "every 48h", "every 15m 20m", "pause now", "resume please",
       "sometimes", "<!channel>", "every <!here>", "x" * 3000, "every 99999999999999h"]


def test_bad_input_changes_nothing(bot: Harness) -> None:
    for text in BAD:
        r = bot.slash("/heartbeat", text)
        reply = r.json()["text"]
        assert "Usage: /heartbeat" in reply, text
        assert "<!channel>" not in reply and "<!here>" not in reply
    assert "&lt;!channel&gt;" in bot.slash("/heartbeat", "<!channel>").json()["text"]
    assert "is not a duration" in bot.slash("/heartbeat", "every 99999999999999h").json()["text"]  # over 30 days
    bot.deliver()
    assert bot.posts() == [] and bot.outbox() == []
    assert [e for e in bot.events() if e.kind.startswith("heartbeat.") or e.kind == "command.refused"] == []
