"""Delivery at Slack's limit (issue 13): the least that shows the truth, urgent first.

The stand-in enforces Slack's pace (a second post to a channel within 0.9 s, or a 51st chat.update
within a minute, is answered 429) on a clock the test moves, and the outbox paces itself on the same
clock: `SlackTime` stands for real time, so a minute of Slack's pace takes no minute of the test's.
The launch's clock moves with it (Retry-After and backoffs count on it).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.config import Env
from bot.outbox import Outbox
from bot.outbox_order import MERGED_TEXT_LIMIT
from bot.runtime import build_runtime
from bot.terminal import Console, ShellTransport
from bot.transport import SlackTransport, make_client
from commands.config import Config, parse_config
from db.models import MessageRef, Rollback
from db.session import make_engine
from tests.conftest import TEST_CONFIG
from tests.faults import assert_exactly_once, outbox_id, pending, queue
from tests.harness import TOKEN, Harness
from tests.standin import Call, SlackStandin

WAR_ROOM = "C0WARROOM"


@dataclass
class SlackTime:
    """Real time as Slack's pace and the outbox's claims count it, moved by the test."""

    seconds: float = 1000.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.seconds)


@dataclass
class Paced:
    """The bot at Slack's pace, driven by the test: `run()` delivers, moving both clocks step by step, and
    notes when (on SlackTime) each call reached the stand-in."""

    bot: Harness
    time: SlackTime
    outboxes: list[Outbox]
    at: list[float] = field(default_factory=list)  # SlackTime of each stand-in call, by index

    def run(self, seconds: float, *, step: float = 0.2, until_empty: bool = True) -> float:
        """Deliver for up to `seconds`; returns the SlackTime it stopped at."""
        for i in range(round(seconds / step)):
            for outbox in self.outboxes[i % len(self.outboxes):] + self.outboxes[:i % len(self.outboxes)]:
                outbox.drain()  # replicas take turns going first
            self._note()
            if until_empty and pending(self.bot) == 0:
                break
            self.time.seconds += step
            self.bot.clock.advance(timedelta(seconds=step))
        return self.time.seconds

    def _note(self) -> None:
        calls = len(self.bot.standin.calls)
        self.at.extend([self.time.seconds] * (calls - len(self.at)))

    def landed(self, method: str = "chat.postMessage") -> list[tuple[float, Call]]:
        """(SlackTime, call) of every call of `method` Slack accepted, in order."""
        return [(self.at[i], c) for i, c in enumerate(self.bot.standin.calls)
                if c.method == method and c.status == 200 and c.response.get("ok")]

    def refused(self) -> list[Call]:
        return [c for c in self.bot.standin.calls if c.status == 429]


def at_slacks_pace(standin: SlackStandin, database_url: str, config: Config, clock: ManualClock) -> Iterator[Paced]:
    slack_time = SlackTime()
    standin.enforce_pacing = True
    standin.pace_clock = slack_time.monotonic
    bot = Harness(standin, database_url, config, clock, slack_timeout=0.5)
    outbox = bot.runtime.outbox
    outbox.pace_s, outbox.update_pace_s, outbox.wall = 1.0, 1.2, slack_time.now
    yield Paced(bot, slack_time, [outbox])
    bot.close()


@pytest.fixture
def paced(standin: SlackStandin, database_url: str, config: Config, clock: ManualClock) -> Iterator[Paced]:
    yield from at_slacks_pace(standin, database_url, config, clock)


@pytest.fixture
def paced_with_limits(standin: SlackStandin, database_url: str, clock: ManualClock) -> Iterator[Paced]:
    """At Slack's pace, with the default limits (20 commands a minute, 10 declarations an hour)."""
    yield from at_slacks_pace(standin, database_url, parse_config({**TEST_CONFIG, "limits": None}), clock)


def ok(r: Any) -> None:
    assert r.status_code == 200 and "sorry" not in r.text.lower(), r.text


def storm(bot: Harness, incidents: int = 10, updates: int = 5) -> None:
    """Issue 13's storm: declarations, then for each incident its updates with an ack after the second."""
    for i in range(1, incidents + 1):
        ok(bot.slash("/incident", f"sev2 storm incident {i}"))
    for n in range(1, incidents + 1):
        for k in range(1, updates + 1):
            ok(bot.slash("/incident", f"update INC-{n} storm update {n}.{k}."))
            if k == 2:
                ok(bot.slash("/incident", f"ack INC-{n}", user="U0ENG"))


def incident_ts(bot: Harness) -> dict[int, str]:
    with bot.session() as s:
        return {int(r.ref.split(":")[1]): r.ts for r in s.exec(select(MessageRef)).all() if r.ref.startswith("incident:")}


def newest_updates(bot: Harness) -> dict[str, dict[str, Any]]:
    """What the bot last meant each updated message to show: the payload of its newest update row."""
    return {r.update_ref: r.payload for r in bot.outbox() if r.method == "chat.update" and r.update_ref}


# -- the storm --------------------------------------------------------------------

def test_the_storm_sends_the_least_that_shows_the_truth(paced: Paced) -> None:
    bot = paced.bot
    storm(bot)
    start = paced.time.seconds
    paced.run(60)
    assert pending(bot) == 0 and paced.refused() == []
    posts, updates = paced.landed(), paced.landed("chat.update")
    notifications = [(t, c) for t, c in posts if str(c.args["text"]).startswith("INCIDENT")]
    assert len(notifications) == 10 and max(t for t, _ in notifications) - start <= 10
    # one post per notification, one per incident's thread (six replies in one), one update per message
    assert len(posts) == 20 and len(updates) == 10
    assert max(t for t, _ in posts + updates) - start <= 30
    ts = incident_ts(bot)
    for n in range(1, 11):
        thread = [str(c.args["text"]) for _, c in posts if c.args.get("thread_ts") == ts[n]]
        said = "\n".join(thread)
        for k in range(1, 6):
            assert said.count(f"storm update {n}.{k}.") == 1, (n, k)
        assert said.count(f"INC-{n} acknowledged by") == 1
        positions = [said.index(f"storm update {n}.{k}.") for k in range(1, 6)]
        assert positions == sorted(positions) and said.index("acknowledged by") < positions[2]  # in order
    finals = newest_updates(bot)
    for n, message_ts in ts.items():
        shown = next(m for m in bot.standin.messages[WAR_ROOM] if m["ts"] == message_ts)
        want = finals[f"incident:{n}"]
        assert (shown["text"], shown["blocks"]) == (want["text"], want["blocks"])
        assert "incident_ack" not in str(shown["blocks"])  # the final state: acknowledged, no Acknowledge button
    statuses = [r.status for r in bot.outbox()]
    assert statuses.count("superseded") == 50 and statuses.count("merged") == 50  # kept for the record
    assert set(statuses) == {"sent", "superseded", "merged"}
    assert_exactly_once(bot)


def test_a_sev1_declared_behind_a_backlog_goes_next(paced: Paced) -> None:
    bot = paced.bot
    storm(bot)
    paced.run(10.4, until_empty=False)  # the ten notifications are out; the routine backlog is not
    assert len([c for _, c in paced.landed() if str(c.args["text"]).startswith("INCIDENT")]) == 10
    backlog = pending(bot)
    assert backlog >= 15
    before = len(paced.landed())
    declared = paced.time.seconds
    ok(bot.slash("/incident", "sev1 payments down behind the backlog"))
    ok(bot.slash("/rollback", "payments down"))
    paced.run(60)
    after = paced.landed()[before:]
    # a rollback's confirmation goes before every other urgent post, the sev1 before the routine backlog
    assert "Rollback requested" in after[0][1].args["text"]  # the very next post, though asked for second
    assert "payments down behind the backlog" in after[1][1].args["text"]  # then the sev1
    assert after[0][0] - declared <= 1.2 and after[1][0] - declared <= 2.4
    assert paced.refused() == []
    assert_exactly_once(bot)


def test_a_flood_of_declarations_never_holds_up_the_commanders_rollback(paced_with_limits: Paced) -> None:
    """Issue 18's acceptance: 60 sev1s from one user store the limit (10, each an urgent notification); the
    rollback's confirmation, then its broadcast, are posted within 3 s of the commander's command and
    click, ahead of the queued sev1s; the sev1s still go before the routine backlog."""
    paced, bot = paced_with_limits, paced_with_limits.bot
    paced.run(30)  # the marks already due at the start, out of the way
    backlog = queue(bot, WAR_ROOM, 10, label="routine") + queue(bot, "C0OPERATORS", 5, label="routine")
    replies = [str(bot.slash("/incident", f"sev1 flood {i}", user="U0FLOOD").json()["text"]) for i in range(60)]
    assert sum("Declared INC-" in r for r in replies) == 10 and len(bot.incidents()) == 10
    assert all("try again in" in r for r in replies if "Declared INC-" not in r)
    paced.run(2, until_empty=False)  # a notification or two are out; the rest wait
    asked = paced.time.seconds
    ok(bot.slash("/rollback", "the flood buried checkout"))
    paced.run(3, until_empty=False)
    posted = [t for t, c in paced.landed() if "Rollback requested" in str(c.args["text"])]
    assert len(posted) == 1 and posted[0] - asked <= 3.0, f"confirmation at {posted}, asked at {asked}"
    waiting = [c for _, c in paced.landed() if str(c.args["text"]).startswith("INCIDENT")]
    assert len(waiting) < 10  # the sev1s were still queued: it went before them
    clicked = paced.time.seconds
    assert bot.block_actions("rollback_confirm", str(_rollback_id(bot))).status_code == 200
    paced.run(3, until_empty=False)
    for channel in (WAR_ROOM, "C0OPERATORS"):
        broadcast = [t for t, c in paced.landed() if c.args["channel"] == channel
                     and str(c.args["text"]).startswith("Rollback initiated at")]
        assert len(broadcast) == 1 and broadcast[0] - clicked <= 3.0, (channel, broadcast, clicked)
    updated = [t for t, c in paced.landed("chat.update") if "Rollback confirmed" in str(c.args["text"])]
    assert len(updated) == 1 and updated[0] - clicked <= 3.0, (updated, clicked)
    paced.run(120)
    posts = [c.args for _, c in paced.landed()]
    notifications = [i for i, p in enumerate(posts) if str(p["text"]).startswith("INCIDENT")]
    routine = [i for i, p in enumerate(posts) if outbox_id(p) in backlog and p["channel"] == WAR_ROOM]
    assert len(notifications) == 10 and max(notifications) < min(routine)  # urgent before routine still
    assert pending(bot) == 0 and paced.refused() == []
    assert_exactly_once(bot)


def test_a_reply_never_goes_before_its_parent(paced: Paced) -> None:
    """A routine notification whose thread gets an urgent escalation: the parent goes first, ahead of the
    routine backlog, then the escalation in its thread; the backlog after them, in its order."""
    bot = paced.bot
    backlog = queue(bot, WAR_ROOM, 3, label="routine")
    ok(bot.slash("/incident", "sev3 search is slow"))  # routine: sev3
    ok(bot.slash("/checkpoint", "hourly"))  # escalates the unacknowledged sev3 (urgent) in its thread and channel
    paced.run(30)
    posts = [c.args for _, c in paced.landed()]
    parent = next(i for i, p in enumerate(posts) if str(p["text"]).startswith("INCIDENT"))
    reply = next(i for i, p in enumerate(posts) if p.get("thread_ts") and "INC-1" in str(p["text"]))
    ts = incident_ts(bot)[1]
    assert parent < reply and posts[reply]["thread_ts"] == ts
    routine = [i for i, p in enumerate(posts) if outbox_id(p) in backlog]
    assert routine == sorted(routine) and parent < routine[0] and reply < routine[0]
    assert paced.refused() == []


def test_a_superseded_update_is_never_sent(paced: Paced) -> None:
    bot = paced.bot
    ok(bot.slash("/incident", "sev2 checkout errors"))
    for k in range(3):  # each update renders a new "next update at" on the message
        bot.clock.advance(timedelta(minutes=1))
        ok(bot.slash("/incident", f"update INC-1 step {k}"))
    ok(bot.slash("/incident", "ack INC-1", user="U0ENG"))
    paced.run(30)
    rows = [r for r in bot.outbox() if r.method == "chat.update"]
    sent = [r for r in rows if r.status == "sent"]
    assert len(sent) == 1 and sent[0].id == max(r.id for r in rows)
    assert all(r.status == "superseded" and r.merged_into == sent[0].id for r in rows if r is not sent[0])
    shown = [(c.args["text"], c.args["blocks"]) for _, c in paced.landed("chat.update")]
    newest = (sent[0].payload["text"], sent[0].payload["blocks"])
    assert shown == [newest]
    older = [(r.payload["text"], r.payload["blocks"]) for r in rows if r.status == "superseded"]
    assert len(older) == 3 and newest not in older  # they were other states, never shown


def test_updates_of_many_messages_keep_the_workspaces_pace(paced: Paced) -> None:
    bot = paced.bot
    for i in range(6):
        ok(bot.slash("/incident", f"sev3 slow page {i}"))
    for n in range(1, 7):
        ok(bot.slash("/incident", f"ack INC-{n}", user="U0ENG"))
    paced.run(60)
    times = [t for t, _ in paced.landed("chat.update")]
    assert len(times) == 6 and all(b - a >= 1.2 - 1e-9 for a, b in zip(times, times[1:], strict=False)), times
    assert paced.refused() == []


def test_replies_go_together_split_only_at_slacks_limit(paced: Paced) -> None:
    bot = paced.bot
    ok(bot.slash("/incident", "sev2 long story"))
    texts = [f"part {k} " + "x" * 1400 for k in range(5)]
    for text in texts:
        ok(bot.slash("/incident", f"update INC-1 {text}"))
    paced.run(30)
    ts = incident_ts(bot)[1]
    replies = [str(c.args["text"]) for _, c in paced.landed() if c.args.get("thread_ts") == ts]
    assert all(len(r) <= MERGED_TEXT_LIMIT for r in replies)
    assert len(replies) == 3  # two, two and one: three would pass the limit
    said = "\n".join(replies)
    assert [said.index(t) for t in texts] == sorted(said.index(t) for t in texts)
    assert all(said.count(t) == 1 for t in texts)
    assert_exactly_once(bot)


def test_a_lone_reply_goes_alone(paced: Paced) -> None:
    bot = paced.bot
    ok(bot.slash("/incident", "sev2 cart empties"))
    paced.run(5)
    ok(bot.slash("/incident", "update INC-1 found it"))
    paced.run(5)
    replies = [c.args for _, c in paced.landed() if c.args.get("thread_ts")]
    assert len(replies) == 1 and "found it" in replies[0]["text"]
    assert [r.status for r in bot.outbox() if r.method == "chat.postMessage"] == ["sent", "sent"]


# -- faults at the limit -------------------------------------------------------------

def test_429s_then_500s_deliver_within_seconds_and_once(paced: Paced) -> None:
    """429s are Slack answering: they do not count towards the 5xx backoff, which starts under a second."""
    bot = paced.bot
    bot.standin.fail("chat.postMessage", status=429, retry_after=1, times=3)
    bot.standin.fail("chat.postMessage", status=500, times=2)
    declared = paced.time.seconds
    ok(bot.slash("/incident", "sev2 flaky slack"))
    paced.run(30, step=0.1)
    posts = paced.landed()
    assert len(posts) == 1 and posts[0][0] - declared <= 6.0
    assert [c.status for c in bot.standin.attempts("chat.postMessage")] == [429, 429, 429, 500, 500, 200]
    assert_exactly_once(bot)


def test_rollback_broadcasts_go_before_routine_posts(paced: Paced) -> None:
    bot = paced.bot
    ok(bot.slash("/rollback", "error rate climbing"))
    paced.run(5)
    routine = queue(bot, WAR_ROOM, 4, label="routine") + queue(bot, "C0OPERATORS", 2, label="routine")
    assert bot.block_actions("rollback_confirm", str(_rollback_id(bot))).status_code == 200
    paced.run(30)
    for channel in (WAR_ROOM, "C0OPERATORS"):
        posts = [p for p in bot.standin.posts(channel) if outbox_id(p) in routine or "Rollback initiated" in str(p["text"])]
        assert len(posts) == 1 + (4 if channel == WAR_ROOM else 2)
        assert str(posts[0]["text"]).startswith("Rollback initiated at"), channel  # ahead of what was queued before
    assert paced.refused() == []
    assert_exactly_once(bot)


def _rollback_id(bot: Harness) -> int:
    with bot.session() as s:
        rollback = s.exec(select(Rollback)).one()
        assert rollback.id is not None
        return rollback.id


# -- replicas ----------------------------------------------------------------------------

def test_two_replicas_share_both_paces(paced: Paced, database_url: str) -> None:
    """Two outboxes on one database take turns: a channel still gets one post a second in all and the
    workspace one update each 1.2 s, never one from each; each message once."""
    bot = paced.bot
    other = Outbox(make_engine(database_url), SlackTransport(make_client(TOKEN, bot.standin.api_url, timeout=2,
                                                                         sdk_retries=False)),
                   bot.clock, pace_s=1.0, update_pace_s=1.2, wall=paced.time.now)
    paced.outboxes.append(other)
    try:
        storm(bot, incidents=4, updates=2)
        queue(bot, "C0OPERATORS", 4)
        paced.run(60)
    finally:
        other.stop()
    assert pending(bot) == 0 and paced.refused() == []
    for channel in (WAR_ROOM, "C0OPERATORS"):
        times = [t for t, c in paced.landed() if c.args["channel"] == channel]
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:], strict=False)), (channel, times)
    times = [t for t, _ in paced.landed("chat.update")]
    assert len(times) == 4 and all(b - a >= 1.2 - 1e-9 for a, b in zip(times, times[1:], strict=False)), times
    assert len({r.claimed_by for r in bot.outbox() if r.status == "sent"}) == 2  # both replicas sent
    assert_exactly_once(bot)


# -- the shell -----------------------------------------------------------------------------

def test_the_shell_shows_the_same_merged_and_coalesced_output(tmp_path: Path, config: Config, clock: ManualClock) -> None:
    out = io.StringIO()
    env = Env(bot_token=None, signing_secret=None, app_token=None, api_url="http://127.0.0.1:9/api/",
              database_url=f"sqlite:///{tmp_path / 'shell.db'}", config_path=None, port=0, log_level="INFO")
    runtime = build_runtime(env, ShellTransport(config, Console(out)), config=config, clock=clock,
                            outbox_pace_s=0.0, outbox_workers=1)
    try:
        runtime.dispatcher.slash("/incident", "sev2 search slow", "U0COMMANDER", WAR_ROOM)
        runtime.settle()
        printed = len(out.getvalue())
        for text in ("update INC-1 index rebuilt", "ack INC-1", "update INC-1 watching it"):  # queued together
            runtime.dispatcher.slash("/incident", text, "U0ENG", WAR_ROOM)
        runtime.settle()
    finally:
        runtime.stop()
    shown = out.getvalue()[printed:]
    assert shown.count("↳ bot:") == 1 and shown.count("bot (updated):") == 1, shown  # one reply, one update
    said = [shown.index(s) for s in ("index rebuilt", "INC-1 acknowledged by @U0ENG", "watching it")]
    assert said == sorted(said)
    updated = shown[shown.index("bot (updated):"):]
    assert "[Acknowledge]" not in updated  # the newest state: acknowledged
