"""Run-of-show marks, the T0 announcement and /launch, through the real stack on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.clock import ManualClock
from commands.config import parse_config
from tests.clockwork import channel_posts, live_timers, race, set_role, texts, timers
from tests.conftest import START, TEST_CONFIG
from tests.harness import Harness
from tests.standin import SlackStandin
from tests.times import as_read, at

MARKS = [
    {"at": "T-24h", "text": "Dry run in staging"},
    {"at": "T-12h", "text": "Code freeze"},
    {"at": "T-2h", "text": "Pre-flight checklist call"},
    {"at": "T-30m", "text": "Warm sessions, run smoke tests"},
    {"at": "T0", "text": "Enable the production flag"},
    {"at": "T+15m", "text": "Verify metrics"},
    {"at": "T+1h", "text": "First business checkpoint (/checkpoint)"},
]
CONFIG = {**TEST_CONFIG, "run_of_show": MARKS}
LIVE = "is now live in production"


def make(standin: SlackStandin, database_url: str, start: timedelta) -> Harness:
    return Harness(standin, database_url, parse_config(CONFIG), ManualClock(START + start))


@pytest.fixture
def early(standin: SlackStandin, database_url: str) -> Iterator[Harness]:
    """A bot first started at T-1h: the marks before that are already behind it."""
    h = make(standin, database_url, -timedelta(hours=1))
    yield h
    h.close()


def test_marks_post_at_their_time_and_t0_announces(early: Harness) -> None:
    early.tick()
    early.deliver()
    summary = texts(early, "passed without being posted")
    assert len(summary) == 1 and "T-24h" in summary[0] and "T-12h" in summary[0] and "T-2h" not in summary[0]
    early.advance(timedelta(minutes=29, seconds=59))
    assert texts(early, "T-30m") == []
    early.advance(timedelta(seconds=1))
    assert texts(early, f"*T-30m* ({at('09:30')}): Warm sessions") and "Late by" not in texts(early, "T-30m")[0]
    early.advance(timedelta(minutes=30))
    assert len(texts(early, LIVE)) == 1 and len(texts(early, LIVE, channel="C0OPERATORS")) == 1
    assert texts(early, f"*T0* ({at('10:00')}): Enable the production flag")
    assert texts(early, LIVE)[0].startswith(":rocket: HotDash Control Center is now live")
    beat = live_timers(early, "heartbeat")
    assert len(beat) == 1 and beat[0].due_at == START + timedelta(minutes=30)
    early.advance(timedelta(minutes=15))
    assert texts(early, f"*T+15m* ({at('10:15')}): Verify metrics")
    early.advance(timedelta(minutes=15))
    assert f"Next checkpoint {at('11:00')} (T+1h)" in texts(early, "Status Update")[0]
    assert len(bot_events(early, "launch.mark")) == 4 and len(bot_events(early, "launch.started")) == 1


def bot_events(bot: Harness, kind: str) -> list[object]:
    return list(bot.events(kind))


def test_launch_start_announces_once_and_t0_does_not_repeat_it(early: Harness) -> None:
    early.tick()
    early.advance(timedelta(minutes=50))
    r = early.slash("/launch", "start")
    assert "announced" in r.json()["text"]
    r = early.slash("/launch", "start")
    assert f"already announced at {at('09:50')}" in r.json()["text"]
    early.advance(timedelta(minutes=10))
    assert len(texts(early, LIVE)) == 1 and len(texts(early, LIVE, channel="C0OPERATORS")) == 1
    assert texts(early, f"*T0* ({at('10:00')}): Enable the production flag")
    assert live_timers(early, "heartbeat")[0].due_at == START + timedelta(minutes=20)  # from 09:50


def test_status_before_and_after_t0(early: Harness) -> None:
    early.tick()
    r = early.slash("/launch", "status", user="U0OPERATOR1")
    text = r.json()["text"]
    assert "T-1h: T0 is <!date^1760634000^{date_short_pretty} {time}|Thu 16 Oct 2025 10:00 PDT>." in text
    assert f"Next: *T-30m* at {at('09:30')} (in 30m)" in text and f"Then: *T0* at {at('10:00')}" in text
    assert "Not announced yet" in text and "starts at T0" in text
    early.advance(timedelta(hours=1))
    early.advance(timedelta(minutes=5))
    text = early.slash("/launch", "", user="U0OPERATOR1").json()["text"]
    assert "T+5m: T0 was" in text and f"Next: *T+15m* at {at('10:15')} (in 10m)" in text
    assert f"Announced at {at('10:00')}." in text and f"next at {at('10:30')}, until {at('14:00')}" in text


def test_t0_moved_moves_every_mark_not_yet_posted(early: Harness) -> None:
    early.tick()
    early.advance(timedelta(minutes=30))  # T-2h (late) and T-30m posted by 09:30
    r = early.slash("/launch", "t0 2025-10-16T12:00:00-07:00")
    assert "T0 is now Thu 16 Oct 2025 12:00 PDT" in as_read(r.json()["text"]) and "3 run-of-show mark(s)" in r.json()["text"]
    early.deliver()
    note = texts(early, "T0 moved to")
    assert len(note) == 1 and f"(was {at('10:00')})" in note[0] and f"next: *T0* at {at('12:00')}" in note[0]
    pending = {t.payload["label"]: t.due_at for t in live_timers(early, "mark")}
    assert pending == {"T0": START + timedelta(hours=2), "T+15m": START + timedelta(hours=2, minutes=15),
                       "T+1h": START + timedelta(hours=3)}
    early.advance(timedelta(minutes=30))  # 10:00, the old T0, passes quietly
    assert texts(early, LIVE) == []
    early.advance(timedelta(hours=1, minutes=59, seconds=59))
    assert texts(early, LIVE) == []
    early.advance(timedelta(seconds=1))
    assert len(texts(early, LIVE)) == 1
    assert live_timers(early, "heartbeat")[0].due_at == START + timedelta(hours=2, minutes=30)
    assert len(texts(early, "*T-30m*")) == 1 and len(texts(early, "*T-2h*")) == 1  # posted marks stay posted
    assert bot_events(early, "launch.t0_moved")[0].payload["marks_moved"] == 3  # type: ignore[attr-defined]


def test_t0_moved_into_the_past_summarises_and_starts_the_heartbeat(early: Harness) -> None:
    early.tick()
    early.deliver()
    early.slash("/launch", "t0 2025-10-16T06:30:00-07:00")  # 2h30m before now (09:00)
    early.tick()
    early.deliver()
    summaries = texts(early, "passed without being posted")
    assert len(summaries) == 2  # the first start's, and the move's
    last = summaries[-1]
    for label in ("*T-30m*", "*T0*", "*T+15m*", "*T+1h*"):  # all over an hour late now
        assert label in last
    assert "`/launch start` posts it" in last and "*T-2h*" not in last  # T-2h was posted before the move
    assert texts(early, LIVE) == []
    assert live_timers(early, "heartbeat")[0].due_at == START - timedelta(minutes=30)  # 06:30 + 5 × 30m


def test_restart_summarises_marks_over_an_hour_late_and_posts_the_rest_late(standin: SlackStandin,
                                                                           database_url: str) -> None:
    first = make(standin, database_url, -timedelta(hours=25))
    first.tick()
    first.deliver()
    assert first.posts() == []
    first.close()
    clock = first.clock
    clock.set(START - timedelta(minutes=20))  # down from T-25h to T-20m
    second = Harness(standin, database_url, parse_config(CONFIG), clock)
    try:
        second.tick()
        second.deliver()
        posts = channel_posts(second)
        assert len(posts) == 2
        assert "T-24h" in posts[0]["text"] and "23h40m late" in posts[0]["text"]
        assert "T-12h" in posts[0]["text"] and "T-2h" in posts[0]["text"] and "1h40m late" in posts[0]["text"]
        assert posts[1]["text"].startswith(f"*T-30m* ({at('09:30')})") and "Late by 10m" in posts[1]["text"]
        assert [t.payload["label"] for t in live_timers(second, "mark")] == ["T0", "T+15m", "T+1h"]
    finally:
        second.close()


def test_two_racers_post_each_mark_and_the_announcement_once(early: Harness) -> None:
    early.tick()
    early.deliver()
    early.clock.advance(timedelta(hours=1))  # T-30m and T0 are due
    race(early.env.database_url, early.config, early.clock, racers=3)
    early.deliver()
    assert len(texts(early, "*T-30m*")) == 1
    assert len(texts(early, LIVE)) == 1 and len(texts(early, LIVE, channel="C0OPERATORS")) == 1
    assert len(live_timers(early, "heartbeat")) == 1
    assert len([t for t in timers(early, "mark") if t.done_at]) == 5


def test_wrong_role_is_refused(early: Harness) -> None:
    for text in ("t0 2025-10-16T12:00:00-07:00", "start"):
        r = early.slash("/launch", text, user="U0ENG")
        assert "The commander is <@U0COMMANDER>" in r.json()["text"]
    set_role(early, "commander", None, early.clock.now())
    r = early.slash("/launch", "start", user="U0COMMANDER")
    assert "Nobody holds the commander role" in r.json()["text"]
    assert len(early.events("command.refused")) == 3
    early.deliver()
    assert texts(early, LIVE) == [] and texts(early, "T0 moved") == []


BAD = ["t0", "t0 tomorrow", "t0 2025-10-16T10:00:00", "t0 2030-01-01T00:00:00Z", "t0 <!channel>",
       "start now", "status please", "launch", "<!channel>", "t0 " + "9" * 3000]


def test_bad_input_changes_nothing(early: Harness) -> None:
    for text in BAD:
        r = early.slash("/launch", text)
        reply = r.json()["text"]
        assert "Usage: /launch" in reply and "<!channel>" not in reply, text
    assert early.outbox() == [] and [e for e in early.events() if e.kind.startswith("launch.")] == []
    assert {t.payload["label"]: t.due_at for t in live_timers(early, "mark")}["T0"] == START
