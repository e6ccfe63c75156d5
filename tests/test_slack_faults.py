"""Slack misbehaves; nothing is lost, nothing is posted twice, order holds per channel.

Every test runs the real app over HTTP against the Web API stand-in, on SQLite and
PostgreSQL. Time is the manual clock: a 60-second outage is the stand-in switched off
while the clock moves, never a sleep. The outbox's WebClient times out after 0.5 s so
a "landed but not heard" send takes half a second, not ten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.outbox import Outbox, Outcome
from bot.transport import SlackTransport, make_client
from commands.config import Config
from db.models import AuditEvent, OutboxMessage
from tests.faults import assert_exactly_once, outbox_id, pending, queue, settle
from tests.harness import TOKEN, Harness
from tests.standin import SlackStandin

WAR_ROOM = "C0WARROOM"


@pytest.fixture
def bot(standin: SlackStandin, database_url: str, config: Config, clock: ManualClock) -> Iterator[Harness]:
    harness = Harness(standin, database_url, config, clock, slack_timeout=0.5)
    yield harness
    harness.close()


def declare(bot: Harness, n: int, sev: str = "sev2") -> None:
    for i in range(n):
        r = bot.slash("/incident", f"{sev} checkout fault {i}")
        assert r.status_code == 200 and "Declared" in r.json()["text"], r.text


def numbers_posted(bot: Harness, channel: str = WAR_ROOM) -> list[str]:
    return [p["text"].rsplit("(", 1)[-1].rstrip(")") for p in bot.posts(channel) if p["text"].startswith("INCIDENT")]


# -- 429 ------------------------------------------------------------------

def test_429_storm_waits_for_retry_after_and_delivers_once_in_order(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", status=429, retry_after=30, times=4)
    declare(bot, 3)
    bot.deliver()
    assert bot.posts() == []
    assert len(bot.standin.attempts("chat.postMessage")) == 1  # one try, then it waits: no hammering
    row = bot.outbox()[0]
    assert row.next_attempt_at == bot.clock.now() + timedelta(seconds=30) and row.error == "rate_limited"
    bot.clock.advance(timedelta(seconds=29))
    bot.deliver()
    assert len(bot.standin.attempts("chat.postMessage")) == 1  # Retry-After not over yet
    settle(bot, step=timedelta(seconds=30))
    assert numbers_posted(bot) == ["INC-1", "INC-2", "INC-3"]
    attempts = bot.standin.attempts("chat.postMessage")
    assert [c.status for c in attempts].count(429) == 4 and len(attempts) == 7
    assert_exactly_once(bot)


def test_429_storm_across_channels_keeps_each_channel_in_order(bot: Harness) -> None:
    channels = [f"C0STORM{i}" for i in range(4)]
    for ch in channels:
        queue(bot, ch, 5)
    bot.standin.fail("chat.postMessage", status=429, retry_after=2, times=12)
    settle(bot, step=timedelta(seconds=2))
    rows = assert_exactly_once(bot)
    assert sum(1 for r in rows.values() if r.status == "sent") == 20
    for ch in channels:
        assert [p["text"] for p in bot.posts(ch)] == [f"note {ch} #{i}" for i in range(5)]


# -- 5xx and timeouts -------------------------------------------------------

def test_500s_back_off_look_before_resending_and_post_once(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", status=500, times=3)
    declare(bot, 2)
    bot.deliver()
    row = bot.outbox()[0]
    assert row.status == "pending" and row.uncertain  # a 5xx may have stored it: look first
    settle(bot, step=timedelta(seconds=10))
    assert numbers_posted(bot) == ["INC-1", "INC-2"]
    assert len(bot.standin.attempts("conversations.history")) >= 1
    assert_exactly_once(bot)


def test_timeout_after_the_post_landed_is_found_by_metadata_not_posted_again(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", delay=1.5)  # lands, answers after the 0.5 s client timeout
    declare(bot, 1)
    bot.deliver()
    assert len(bot.posts(WAR_ROOM)) == 1  # it landed
    row = bot.outbox()[0]
    assert row.status == "pending" and row.uncertain and row.ts is None
    bot.clock.advance(timedelta(seconds=5))
    bot.deliver()
    row = bot.outbox()[0]
    assert row.status == "sent" and row.ts == bot.standin.messages[WAR_ROOM][0]["ts"]
    assert len(bot.standin.attempts("chat.postMessage")) == 1  # found, never sent again
    # the thread reply of an acknowledgement goes to the right thread afterwards
    bot.block_actions("incident_ack", "1", user="U0ENG")
    bot.deliver()
    replies = [p for p in bot.posts(WAR_ROOM) if p.get("thread_ts")]
    assert replies and replies[0]["thread_ts"] == row.ts
    assert_exactly_once(bot)


def test_timeout_of_a_thread_reply_is_found_in_the_thread(bot: Harness) -> None:
    declare(bot, 1)
    bot.deliver()
    bot.standin.fail("chat.postMessage", delay=1.5)
    assert bot.slash("/incident", "update INC-1 rolled back the deploy").status_code == 200
    bot.deliver()
    settle(bot)
    assert len(bot.standin.attempts("conversations.replies")) >= 1
    updates = [p for p in bot.posts(WAR_ROOM) if "rolled back the deploy" in p["text"]]
    assert len(updates) == 1
    assert_exactly_once(bot)


def test_lookup_failure_does_not_send_blind(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", delay=1.5)
    bot.standin.fail("conversations.history", status=500, times=2)
    declare(bot, 1)
    bot.deliver()
    for _ in range(2):
        bot.clock.advance(timedelta(seconds=30))
        bot.deliver()
    assert len(bot.standin.attempts("chat.postMessage")) == 1  # Slack could not say: not sent again
    settle(bot, step=timedelta(seconds=30))
    assert len(bot.standin.attempts("chat.postMessage")) == 1
    assert_exactly_once(bot)


def test_an_escalation_ping_that_may_have_landed_is_not_withdrawn_at_ack(bot: Harness) -> None:
    """Withdrawing queued pings at acknowledgement must not withdraw one Slack may already show."""
    declare(bot, 1, sev="sev1")
    bot.advance(timedelta(minutes=4, seconds=59))  # everything else due by now is out of the way
    bot.standin.fail("chat.postMessage", delay=1.5)  # the ping lands; its answer comes too late
    bot.advance(timedelta(seconds=1))
    pings = [r for r in bot.outbox() if r.kind == "incident.escalation" and r.uncertain]
    assert len(pings) == 1 and pings[0].status == "pending"  # the one whose answer never came
    bot.block_actions("incident_ack", "1", user="U0ENG")
    assert next(r for r in bot.outbox() if r.id == pings[0].id).status == "pending"  # kept
    bot.clock.advance(timedelta(seconds=5))
    bot.deliver()
    assert next(r for r in bot.outbox() if r.id == pings[0].id).status == "sent"  # found by metadata
    assert sum(outbox_id(p) == pings[0].id for p in bot.posts()) == 1
    assert_exactly_once(bot)


# -- a 60-second outage ---------------------------------------------------------

def test_sixty_second_outage_then_everything_once_in_order(bot: Harness) -> None:
    bot.standin.outage()
    declare(bot, 4)
    assert bot.slash("/incident", "update INC-1 still digging").status_code == 200
    bot.block_actions("incident_ack", "2", user="U0ENG")
    queue(bot, "C0OPERATORS", 3)
    for _ in range(12):  # 60 s of manual time, a pass every 5 s
        bot.deliver()
        bot.clock.advance(timedelta(seconds=5))
    assert bot.posts() == []
    failed = [c for c in bot.standin.calls if c.status == 503]
    assert 0 < len(failed) <= 40  # it backs off: a handful of tries per channel, not a hammering
    queued = len(bot.outbox())
    bot.standin.end_outage()
    settle(bot)
    assert bot.standin.attempts("conversations.history") == []  # a 503 turned the post away: no lookup needed
    rows = assert_exactly_once(bot)
    assert len(rows) == queued and all(r.status == "sent" for r in rows.values())
    assert numbers_posted(bot) == ["INC-1", "INC-2", "INC-3", "INC-4"]
    message = bot.standin.messages[WAR_ROOM][1]
    assert "INC-2" in message["text"] and "acknowledged" in str(message["blocks"]).lower()  # the update applied


def test_when_slack_answers_again_backed_off_channels_go_at_once(bot: Harness) -> None:
    channels = [f"C0BACK{i}" for i in range(5)]
    bot.standin.outage()
    for ch in channels:  # messages queued a few seconds apart: their backoffs end at different times
        queue(bot, ch, 2)
        bot.deliver()
        bot.clock.advance(timedelta(seconds=7))
    for _ in range(30):
        bot.deliver()
        bot.clock.advance(timedelta(seconds=3))
    due = sorted(r.next_attempt_at for r in bot.outbox() if r.next_attempt_at)
    assert due[-1] - due[0] >= timedelta(seconds=5)  # really spread out
    bot.standin.end_outage()
    while not bot.posts():  # the first channel whose backoff ends finds Slack back...
        bot.clock.advance(timedelta(seconds=1))
        bot.deliver()
    bot.deliver()  # ...and every other channel goes now, not when its own backoff would have ended
    assert {p["channel"] for p in bot.posts()} == set(channels)
    settle(bot)
    assert_exactly_once(bot)


def test_delivery_never_blocks_acking_a_command(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", delay=1.5, times=None)  # every post hangs past the timeout
    declare(bot, 2)
    stop = threading.Event()

    def deliver_forever() -> None:
        while not stop.is_set():
            bot.deliver()

    worker = threading.Thread(target=deliver_forever, daemon=True)
    worker.start()
    try:
        slowest = 0.0
        for i in range(6):
            started = time.monotonic()
            r = bot.slash("/incident", f"sev3 while slack hangs {i}")
            slowest = max(slowest, time.monotonic() - started)
            assert r.status_code == 200 and "Declared" in r.json()["text"]
        assert slowest < 1.0, f"an ack took {slowest:.2f}s while delivery hung"
    finally:
        stop.set()
        worker.join(timeout=10)
    bot.standin.clear_faults()
    time.sleep(1.6)  # let the stand-in finish its slow answers
    settle(bot)
    assert_exactly_once(bot)


# -- permanent errors ---------------------------------------------------------

def test_channel_not_found_is_not_retried_reported_once_and_kept(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", error="channel_not_found", channel="C0GONE", times=None)
    gone = queue(bot, "C0GONE", 3)
    queue(bot, "C0OPERATORS", 2)
    settle(bot)
    bot.clock.advance(timedelta(minutes=2))
    settle(bot)
    attempts = [c for c in bot.standin.attempts("chat.postMessage") if c.args.get("channel") == "C0GONE"]
    assert len(attempts) == 3  # each tried once, never again
    rows = {r.id: r for r in bot.outbox()}
    assert all(rows[i].status == "failed" and rows[i].error == "channel_not_found" for i in gone)
    reports = [p for p in bot.posts(WAR_ROOM) if "could not deliver" in p["text"]]
    assert len(reports) == 1 and "C0GONE" in reports[0]["text"] and "channel_not_found" in reports[0]["text"]
    kept = bot.events("outbox.undeliverable")
    assert sorted(e.payload["outbox_id"] for e in kept) == gone  # on the audit trail, for the export
    assert len(bot.posts("C0OPERATORS")) == 2
    assert_exactly_once(bot)


def test_war_room_not_in_channel_goes_to_the_log(bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    bot.standin.fail("chat.postMessage", error="not_in_channel", channel=WAR_ROOM, times=None)
    with caplog.at_level(logging.ERROR, logger="warroom.outbox"):
        declare(bot, 2)
        settle(bot)
    assert bot.posts() == []
    attempts = bot.standin.attempts("chat.postMessage")
    assert len(attempts) == 2  # one try each
    logged = [r for r in caplog.records if "undeliverable" in r.getMessage()]
    assert logged and all(getattr(r, "error", None) in ("not_in_channel", "message_not_found") for r in logged)
    assert {e.payload["error"] for e in bot.events("outbox.undeliverable")} >= {"not_in_channel"}
    with bot.session() as s:
        reports = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "outbox.undeliverable")).all()
    assert reports == []  # no report queued into the broken war room


def test_revoked_token_keeps_messages_until_it_is_fixed(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", error="invalid_auth", times=3)
    declare(bot, 1)
    bot.deliver()
    row = bot.outbox()[0]
    assert row.status == "pending" and row.error == "invalid_auth"  # not dropped
    settle(bot, step=timedelta(seconds=60))
    assert numbers_posted(bot) == ["INC-1"]
    assert_exactly_once(bot)


# -- pacing and competing deliverers -----------------------------------------------

def test_pacing_one_post_per_second_per_channel(bot: Harness) -> None:
    bot.standin.enforce_pacing = True  # the stand-in answers 429 to a second post within 0.9 s
    bot.runtime.outbox.pace_s = 1.0
    for ch in ("C0PACEA", "C0PACEB"):
        queue(bot, ch, 3)
    started = time.monotonic()
    while pending(bot) and time.monotonic() - started < 10:
        bot.deliver()
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert pending(bot) == 0
    assert [c.status for c in bot.standin.attempts("chat.postMessage")].count(429) == 0
    for ch in ("C0PACEA", "C0PACEB"):
        times = [c.at for c in bot.standin.attempts("chat.postMessage") if c.args.get("channel") == ch]
        assert len(times) == 3 and all(b - a >= 0.95 for a, b in zip(times, times[1:], strict=False)), times
    assert elapsed < 4.0  # the two channels are paced side by side, not one after the other
    assert_exactly_once(bot)


def test_replicas_share_each_channels_pace(bot: Harness) -> None:
    """Two outboxes (two replicas) on one database take turns posting to one channel: the second waits
    for the pace the first one's post set, so the channel still gets one post a second, not one a second
    from each."""
    bot.standin.enforce_pacing = True  # the stand-in answers 429 to a second post within 0.9 s
    bot.runtime.outbox.pace_s = 1.0
    queue(bot, "C0PACED", 4)
    other = Outbox(_engine(bot), SlackTransport(make_client(TOKEN, bot.standin.api_url, timeout=2, sdk_retries=False)),
                   bot.clock, pace_s=1.0)
    turn, waiting = bot.runtime.outbox, other
    deadline = time.monotonic() + 15
    while pending(bot) and time.monotonic() < deadline:
        if turn.deliver_due(wait=True):  # posted (or tried): the other replica takes the next one
            turn, waiting = waiting, turn
        else:
            time.sleep(0.02)
    other.stop()
    attempts = bot.standin.attempts("chat.postMessage")
    assert pending(bot) == 0
    assert [c.status for c in attempts].count(429) == 0, [c.status for c in attempts]
    times = [c.at for c in attempts]
    assert len(times) == 4 and all(b - a >= 0.95 for a, b in zip(times, times[1:], strict=False)), times
    assert len({row.claimed_by for row in bot.outbox()}) == 2  # both replicas posted, in turn
    assert_exactly_once(bot)


def test_two_outboxes_racing_deliver_each_message_once(bot: Harness) -> None:
    for ch in ("C0RACEA", "C0RACEB", "C0RACEC"):
        queue(bot, ch, 15)
    other_engine_outbox = Outbox(
        _engine(bot), SlackTransport(make_client(TOKEN, bot.standin.api_url, timeout=2, sdk_retries=False)),
        bot.clock, pace_s=0.0)
    threads = [threading.Thread(target=o.drain) for o in (bot.runtime.outbox, other_engine_outbox)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    settle(bot)
    rows = assert_exactly_once(bot)
    assert len({r.claimed_by for r in rows.values()}) >= 1 and len(bot.posts()) == 45
    other_engine_outbox.stop()


def test_a_crash_between_send_and_mark_is_found_not_reposted(bot: Harness) -> None:
    """The process dies after Slack stored the post but before the row was marked sent."""

    class Crash(BaseException):
        pass

    class DiesAfterSending:
        def __init__(self, inner: SlackTransport) -> None:
            self.inner = inner

        def send(self, message: OutboxMessage, thread_ts: str | None, update_ts: str | None) -> Outcome:
            self.inner.send(message, thread_ts, update_ts)
            raise Crash()

        def find_sent(self, message: OutboxMessage, thread_ts: str | None) -> str | None:
            return self.inner.find_sent(message, thread_ts)

    declare(bot, 1)
    transport = SlackTransport(make_client(TOKEN, bot.standin.api_url, timeout=2, sdk_retries=False))
    doomed = Outbox(_engine(bot), DiesAfterSending(transport), bot.clock, pace_s=0.0,
                    claim_for=timedelta(seconds=0.3))
    with pytest.raises(Crash):
        doomed.deliver_due(wait=True)
    assert len(bot.posts(WAR_ROOM)) == 1 and bot.outbox()[0].status == "pending"
    survivor = Outbox(_engine(bot), transport, bot.clock, pace_s=0.0, claim_for=timedelta(seconds=0.3))
    assert survivor.drain() == 0  # still claimed by the dead one
    time.sleep(0.35)
    survivor.drain()
    assert bot.outbox()[0].status == "sent"
    assert len(bot.standin.attempts("chat.postMessage")) == 1
    assert_exactly_once(bot)


def _engine(bot: Harness) -> Any:
    from db.session import make_engine

    return make_engine(bot.env.database_url)


def test_undeliverable_rows_stay_on_the_audit_trail(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", error="is_archived", channel="C0ARCHIVED", times=None)
    queue(bot, "C0ARCHIVED", 1)
    settle(bot)
    with bot.session() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.kind == "outbox.undeliverable")).all()
    assert [e.payload["error"] for e in events] == ["is_archived"]
    assert outbox_id({}) is None


# -- a lookup the bot cannot make -------------------------------------------------------------
# With chat:write.public the bot posts to public channels it has not joined; there Slack answers its
# conversations.history with not_in_channel: a post whose answer was lost can never be looked up.

def test_a_routine_post_that_cannot_be_looked_up_is_kept_reported_and_does_not_hold_its_channel(bot: Harness) -> None:
    bot.standin.fail("conversations.history", error="not_in_channel", channel="C0OPERATORS", times=None)
    bot.standin.fail("chat.postMessage", status=500, channel="C0OPERATORS")  # its answer lost
    doubtful, *after = queue(bot, "C0OPERATORS", 3)
    settle(bot)
    rows = {r.id: r for r in bot.outbox()}
    assert rows[doubtful].status == "unconfirmed" and rows[doubtful].error == "unconfirmed: not_in_channel"
    assert all(rows[i].status == "sent" for i in after)  # the channel's queue goes on
    attempts = [c for c in bot.standin.attempts("chat.postMessage") if c.args.get("channel") == "C0OPERATORS"]
    assert len(attempts) == 3  # the doubtful one is never sent again
    reports = [p["text"] for p in bot.posts(WAR_ROOM) if "cannot tell whether" in p["text"]]
    assert len(reports) == 1 and "C0OPERATORS" in reports[0] and "not sent again" in reports[0]
    assert [e.payload["outbox_id"] for e in bot.events("outbox.unconfirmed")] == [doubtful]


def test_an_urgent_broadcast_that_cannot_be_looked_up_is_sent_again_once(bot: Harness) -> None:
    """A rollback broadcast twice is the lesser harm than none: sent again once, never a third time."""
    bot.standin.fail("conversations.history", error="not_in_channel", channel="C0OPERATORS", times=None)
    assert bot.slash("/rollback", "error rate over 5%").status_code == 200
    settle(bot)
    rollback_id = next(e.payload["rollback_id"] for e in bot.events("rollback.requested"))
    bot.standin.fail("chat.postMessage", delay=1.5, channel="C0OPERATORS")  # lands; its answer comes too late
    bot.standin.fail("chat.postMessage", status=500, channel="C0OPERATORS")  # the resend's answer lost too
    assert bot.block_actions("rollback_confirm", str(rollback_id)).status_code == 200
    settle(bot)
    time.sleep(1.1)  # the stand-in's late answer
    broadcast = next(r for r in bot.outbox() if r.kind == "rollback.broadcast" and r.channel == "C0OPERATORS")
    attempts = [c for c in bot.standin.attempts("chat.postMessage") if c.args.get("channel") == "C0OPERATORS"]
    assert len(attempts) == 2 and broadcast.status == "unconfirmed"  # sent again once, then it stopped
    reports = [p["text"] for p in bot.posts(WAR_ROOM) if "cannot tell whether" in p["text"]]
    assert len(reports) == 1 and "sent again once" in reports[0]


def test_an_urgent_resend_that_lands_is_reported_as_maybe_twice(bot: Harness) -> None:
    bot.standin.fail("conversations.history", error="not_in_channel", channel="C0OPERATORS", times=None)
    assert bot.slash("/rollback", "error rate over 5%").status_code == 200
    settle(bot)
    rollback_id = next(e.payload["rollback_id"] for e in bot.events("rollback.requested"))
    bot.standin.fail("chat.postMessage", delay=1.5, channel="C0OPERATORS")
    assert bot.block_actions("rollback_confirm", str(rollback_id)).status_code == 200
    settle(bot)
    landed = [p for p in bot.posts("C0OPERATORS") if p["text"].startswith("Rollback initiated at")]
    assert len(landed) == 2  # the first landed unheard; the resend too
    broadcast = next(r for r in bot.outbox() if r.kind == "rollback.broadcast" and r.channel == "C0OPERATORS")
    assert broadcast.status == "sent"
    reports = [p["text"] for p in bot.posts(WAR_ROOM) if "cannot tell whether" in p["text"]]
    assert len(reports) == 1 and "may show twice" in reports[0]


def test_at_start_up_the_bot_joins_its_channels_and_reports_those_it_cannot(bot: Harness) -> None:
    bot.standin.fail("conversations.join", error="method_not_supported_for_channel_type", channel="C0PRIVATE")
    refused = bot.runtime.outbox.join_channels([WAR_ROOM, "C0OPERATORS", "C0PRIVATE"], WAR_ROOM)
    assert refused == {"C0PRIVATE": "method_not_supported_for_channel_type"}
    assert [c.args.get("channel") for c in bot.standin.attempts("conversations.join")] == [
        WAR_ROOM, "C0OPERATORS", "C0PRIVATE"]
    settle(bot)
    [report] = [p["text"] for p in bot.posts(WAR_ROOM) if "could not join" in p["text"]]
    assert "C0PRIVATE" in report and "invite the bot" in report and "C0OPERATORS" not in report
    health = bot.http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["outbox"]["must_be_invited_to"] == {"C0PRIVATE": "method_not_supported_for_channel_type"}


# -- an export, at most once ------------------------------------------------------------------

def test_an_export_whose_answer_was_lost_is_looked_up_not_uploaded_again(bot: Harness) -> None:
    bot.standin.fail("files.completeUploadExternal", delay=1.5)  # shared; its answer comes too late
    assert bot.slash("/export", "csv", user="U0CX").status_code == 200
    settle(bot)
    [row] = [r for r in bot.outbox() if r.method == "files.upload"]
    assert row.status == "sent" and row.ts in bot.standin.shared_files
    assert len(bot.standin.attempts("files.getUploadURLExternal")) == 1  # never uploaded again
    assert len(bot.standin.attempts("files.info")) == 1 and len(bot.standin.shared_files) == 1


def test_an_export_slack_failed_to_share_is_uploaded_again_once(bot: Harness) -> None:
    bot.standin.fail("files.completeUploadExternal", status=500)  # not shared, as files.info then says
    assert bot.slash("/export", "csv", user="U0CX").status_code == 200
    settle(bot)
    [row] = [r for r in bot.outbox() if r.method == "files.upload"]
    assert row.status == "sent"
    assert len(bot.standin.attempts("files.info")) == 1
    assert len(bot.standin.attempts("files.getUploadURLExternal")) == 2 and len(bot.standin.shared_files) == 1


def test_an_upload_refused_before_sharing_is_tried_again_without_looking(bot: Harness) -> None:
    bot.standin.fail("files.getUploadURLExternal", status=500)
    assert bot.slash("/export", "csv", user="U0CX").status_code == 200
    settle(bot)
    assert [r.status for r in bot.outbox() if r.method == "files.upload"] == ["sent"]
    assert bot.standin.attempts("files.info") == [] and len(bot.standin.shared_files) == 1
