"""Escalation by severity and the Critical plan check, through the real stack on a manual clock."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.clock import ManualClock
from commands.config import parse_config
from commands.escalation import escalate_waiting_for_checkpoint
from db.models import Incident
from tests.clockwork import channel_posts, live_timers, pings, race, set_role, texts, thread_posts, timers
from tests.conftest import TEST_CONFIG
from tests.harness import Harness


def declare(bot: Harness, text: str = "sev1 checkout 500s", user: str = "U0SCRIBE") -> None:
    r = bot.slash("/incident", text, user=user)
    assert r.status_code == 200 and "Declared INC-" in r.json()["text"], r.text
    bot.deliver()


def test_chain_is_climbed_then_last_role_repeats(bot: Harness) -> None:
    declare(bot)
    notification = channel_posts(bot)[-1]["text"]
    assert notification.startswith("INCIDENT [Critical]") and "<@U0COMMANDER>" in notification
    notification_ts = [m for m in bot.standin.messages["C0WARROOM"] if "INCIDENT" in (m["text"] or "")][0]["ts"]
    bot.advance(timedelta(minutes=4, seconds=59))
    assert pings(bot) == []
    bot.advance(timedelta(seconds=1))
    first = pings(bot)
    assert len(first) == 1
    assert "INC-1" in first[0] and "escalating to <@U0ENG>" in first[0] and "5m" in first[0]
    assert pings(bot, thread=True) == first  # one message, in the thread and in the channel
    assert [p["thread_ts"] for p in thread_posts(bot) if "escalat" in p["text"]] == [notification_ts]
    bot.advance(timedelta(minutes=5))
    assert len(pings(bot)) == 2 and "escalating to <@U0EXEC>" in pings(bot)[1] and "10m" in pings(bot)[1]
    bot.advance(timedelta(minutes=5))
    third = pings(bot)[2]
    assert "exhausted" in third and "<@U0EXEC>" in third and "every 5m" in third
    bot.advance(timedelta(minutes=5))
    assert len(pings(bot)) == 4 and "exhausted" in pings(bot)[3]
    incident = bot.incidents()[0]
    assert incident.escalations == 4
    events = bot.events("incident.escalated")
    assert [e.payload["user"] for e in events] == ["U0ENG", "U0EXEC", "U0EXEC", "U0EXEC"]
    assert [e.payload["exhausted"] for e in events] == [False, False, True, True]


def test_the_ping_is_one_thread_reply_broadcast_to_the_channel(bot: Harness) -> None:
    declare(bot)
    notification = next(m for m in bot.standin.messages["C0WARROOM"] if (m["text"] or "").startswith("INCIDENT"))
    before = len(bot.posts())
    bot.advance(timedelta(minutes=5))
    sent = [p for p in bot.posts()[before:] if "INC-1" in p["text"]]  # (T0's marks fell due too)
    assert len(sent) == 1  # one chat.postMessage, not one for the channel and one for the thread
    ping = sent[0]
    assert ping["thread_ts"] == notification["ts"] and ping["reply_broadcast"] is True
    assert "INC-1" in ping["text"] and "escalat" in ping["text"] and "<@U0ENG>" in ping["text"]
    # Slack shows it in the thread and in the channel; the lookups by metadata see it in both
    history = bot.standin.handle("/api/conversations.history", "application/json",
                                 json.dumps({"channel": "C0WARROOM"}).encode())[2]
    replies = bot.standin.handle("/api/conversations.replies", "application/json",
                                 json.dumps({"channel": "C0WARROOM", "ts": notification["ts"]}).encode())[2]
    for found in (history["messages"], replies["messages"]):
        assert [m["metadata"]["event_payload"]["outbox_id"] for m in found if "escalat" in (m["text"] or "")] == [
            next(r.id for r in bot.outbox() if r.kind == "incident.escalation")]
    # and it armed the next level when it landed
    armed = live_timers(bot, "escalation")
    assert len(armed) == 1 and armed[0].due_at == bot.clock.now() + timedelta(minutes=5)


def test_the_ping_reaches_the_channel_when_the_incident_message_never_landed(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", error="msg_too_long", channel="C0WARROOM")  # the notification only
    declare(bot)
    assert not [p for p in bot.posts() if p["text"].startswith("INCIDENT")]
    bot.advance(timedelta(minutes=5))
    ping = [p for p in bot.posts() if "escalat" in p["text"]]
    assert len(ping) == 1 and "<@U0ENG>" in ping[0]["text"]
    assert "thread_ts" not in ping[0] and "reply_broadcast" not in ping[0]  # in the channel itself
    assert pings(bot) == [ping[0]["text"]]
    assert len(live_timers(bot, "escalation")) == 1 and live_timers(bot, "escalation")[0].due_at is not None


def test_ack_one_second_before_the_deadline_stops_it(bot: Harness) -> None:
    declare(bot)
    bot.advance(timedelta(minutes=4, seconds=59))
    r = bot.slash("/incident", "ack INC-1", user="U0ENG")
    assert "acknowledged" in r.json()["text"]
    bot.advance(timedelta(seconds=1))
    bot.advance(timedelta(hours=1))
    assert pings(bot) == [] and pings(bot, thread=True) == []
    assert live_timers(bot, "escalation") == []
    assert bot.events("incident.escalated") == []


def test_ack_while_the_ping_waits_in_the_outbox_stops_the_next_level(bot: Harness) -> None:
    declare(bot)
    bot.advance(timedelta(minutes=5), deliver=False)  # the ping is queued; the next level is dormant
    dormant = live_timers(bot, "escalation")
    assert len(dormant) == 1 and dormant[0].due_at is None and dormant[0].delay_s == 300
    bot.block_actions("incident_ack", "1", user="U0ENG")
    bot.deliver()
    assert pings(bot) == []  # the queued ping is withdrawn: nobody is paged for an acknowledged incident
    withdrawn = [m for m in bot.outbox() if m.kind == "incident.escalation"]
    assert len(withdrawn) == 1 and withdrawn[0].status == "withdrawn"
    assert bot.events("incident.escalated")  # the escalation stays on the record
    after = [t for t in timers(bot, "escalation") if t.id == dormant[0].id][0]
    assert after.due_at is None and after.done_at is not None  # never armed
    bot.advance(timedelta(hours=1))
    assert pings(bot) == []


def test_next_level_counts_from_when_the_ping_was_posted(bot: Harness) -> None:
    declare(bot)
    bot.advance(timedelta(minutes=5), deliver=False)
    bot.clock.advance(timedelta(minutes=2))  # Slack was slow: the ping lands at +7m
    bot.deliver()
    armed = live_timers(bot, "escalation")
    assert len(armed) == 1 and armed[0].due_at == bot.clock.now() + timedelta(minutes=5)
    bot.advance(timedelta(minutes=4, seconds=59))
    assert len(pings(bot)) == 1
    bot.advance(timedelta(seconds=1))
    assert len(pings(bot)) == 2


def test_resolve_stops_the_clock(bot: Harness) -> None:
    declare(bot, user="U0COMMANDER")
    bot.advance(timedelta(minutes=5))
    bot.slash("/incident", "resolve INC-1 fixed", user="U0COMMANDER")
    bot.advance(timedelta(hours=1))
    assert len(pings(bot)) == 1
    assert live_timers(bot, "escalation") == [] and live_timers(bot, "plan_check") == []


def test_severity_raised_mid_clock_takes_the_stricter_deadline(bot: Harness) -> None:
    declare(bot, "sev2 search is slow")
    bot.advance(timedelta(minutes=2))
    r = bot.slash("/incident", "sev INC-1 sev1", user="U0COMMANDER")
    assert "Critical" in r.json()["text"]
    bot.advance(timedelta(minutes=4, seconds=59))  # +6m59s: the sev1 deadline is +7m (not sev2's +15m)
    assert pings(bot) == []
    bot.advance(timedelta(seconds=1))
    assert len(pings(bot)) == 1 and "<@U0ENG>" in pings(bot)[0] and "[Critical]" in pings(bot)[0]
    assert len(live_timers(bot, "escalation")) == 1
    # a new Critical gets its plan check, 15 minutes after it became Critical
    plan = live_timers(bot, "plan_check")
    assert len(plan) == 1 and plan[0].due_at == bot.clock.now() + timedelta(minutes=10)


def test_severity_lowered_keeps_the_pending_deadline_and_lowest_has_no_clock(bot: Harness) -> None:
    declare(bot, "sev1 payments down")
    bot.advance(timedelta(minutes=1))
    bot.slash("/incident", "sev INC-1 sev2", user="U0COMMANDER")
    armed = live_timers(bot, "escalation")
    assert len(armed) == 1 and armed[0].due_at == bot.clock.now() + timedelta(minutes=4)
    bot.slash("/incident", "sev INC-1 sev4", user="U0COMMANDER")
    assert live_timers(bot, "escalation") == []
    bot.advance(timedelta(hours=1))
    assert pings(bot) == []


def test_sev3_waits_for_the_checkpoint_then_raised_gets_a_clock(bot: Harness) -> None:
    declare(bot, "sev3 tooltip typo")
    assert live_timers(bot, "escalation") == []
    bot.advance(timedelta(hours=2))
    assert pings(bot) == []
    r = bot.slash("/checkpoint", "T+2h review", user="U0COMMANDER")  # the console's /checkpoint calls our hook
    assert r.status_code == 200
    bot.deliver()
    assert len(pings(bot)) == 1 and "at this checkpoint" in pings(bot)[0] and "<@U0COMMANDER>" in pings(bot)[0]
    assert bot.incidents()[0].escalations == 1
    escalated = bot.runtime.dispatcher.tick(lambda ctx: [i.number for i in escalate_waiting_for_checkpoint(ctx)])
    assert escalated == [1]
    bot.deliver()
    assert len(pings(bot)) == 2
    assert live_timers(bot, "escalation") == []  # the next checkpoint is its next deadline
    bot.slash("/incident", "sev INC-1 sev1", user="U0COMMANDER")
    assert len(live_timers(bot, "escalation")) == 1


def test_role_changed_mid_chain_and_unheld_role_skipped(bot: Harness) -> None:
    declare(bot)
    set_role(bot, "eng_oncall", None, bot.clock.now())  # nobody holds eng_oncall now
    bot.advance(timedelta(minutes=5))
    first = pings(bot)[0]
    assert "escalating to <@U0EXEC>" in first and "no one holds: eng_oncall" in first
    set_role(bot, "exec", "U0NEWEXEC", bot.clock.now())
    bot.advance(timedelta(minutes=5))
    second = pings(bot)[1]
    assert "<@U0NEWEXEC>" in second and "exhausted" in second


def test_nobody_in_the_chain_is_said(bot: Harness) -> None:
    for role in ("commander", "eng_oncall", "exec"):
        set_role(bot, role, None, bot.clock.now())
    declare(bot)
    bot.advance(timedelta(minutes=5))
    assert "there is no one to escalate to" in pings(bot)[0] and "<@" not in pings(bot)[0]


def test_summary_cannot_inject_mentions_into_pings(bot: Harness) -> None:
    declare(bot, "sev1 <!channel> & <@U0EVIL> down")
    bot.advance(timedelta(minutes=5))
    ping = pings(bot)[0]
    assert "<!channel>" not in ping and "<@U0EVIL>" not in ping and "&lt;!channel&gt; &amp;" in ping


def test_restart_after_a_missed_deadline_pings_once_and_says_how_late(bot: Harness) -> None:
    declare(bot)
    bot.close()
    bot.clock.advance(timedelta(minutes=23))  # down across several would-be deadlines
    second = Harness(bot.standin, bot.env.database_url, bot.config, bot.clock)
    try:
        assert second.tick() >= 1
        second.deliver()
        assert len(pings(second)) == 1
        assert "<@U0ENG>" in pings(second)[0] and "18m late" in pings(second)[0] and "23m" in pings(second)[0]
        armed = live_timers(second, "escalation")
        assert len(armed) == 1 and armed[0].due_at == bot.clock.now() + timedelta(minutes=5)
        second.advance(timedelta(minutes=4))
        assert len(pings(second)) == 1  # two levels never fire together
        second.advance(timedelta(minutes=1))
        assert len(pings(second)) == 2 and "<@U0EXEC>" in pings(second)[1]
    finally:
        second.close()


def test_two_racers_post_each_due_ping_once(bot: Harness) -> None:
    for n in range(6):
        bot.slash("/incident", f"sev1 outage {n}", user="U0SCRIBE")
    bot.deliver()
    bot.clock.advance(timedelta(minutes=5))
    results = race(bot.env.database_url, bot.config, bot.clock, racers=3)
    assert sum(results) >= 6
    bot.deliver()
    events = bot.events("incident.escalated")
    assert sorted(e.payload["number"] for e in events) == [1, 2, 3, 4, 5, 6]
    escalations = [p for p in bot.posts() if "escalat" in p["text"]]
    assert len(escalations) == 6 and all(p.get("reply_broadcast") for p in escalations)
    assert sorted(p["text"].split()[1] for p in escalations) == [f"INC-{n}" for n in range(1, 7)]


def test_plan_check_pings_the_commander_once(bot: Harness) -> None:
    declare(bot, "sev1 checkout 500s")
    bot.slash("/incident", "ack INC-1", user="U0ENG")
    declare(bot, "sev1 search down")
    bot.slash("/incident", "ack INC-2", user="U0ENG")
    bot.advance(timedelta(minutes=10))
    bot.slash("/incident", "update INC-2 rolling back the search deploy", user="U0ENG")
    bot.advance(timedelta(minutes=5))
    notes = texts(bot, "with no update posted")
    assert len(notes) == 1 and "INC-1" in notes[0] and "<@U0COMMANDER>" in notes[0] and "15m" in notes[0]
    bot.advance(timedelta(hours=2))
    assert len(texts(bot, "with no update posted")) == 1
    assert len(bot.events("incident.plan_missing")) == 1
    # lowering and raising again does not ping twice
    bot.slash("/incident", "sev INC-1 sev2", user="U0COMMANDER")
    bot.slash("/incident", "sev INC-1 sev1", user="U0COMMANDER")
    bot.advance(timedelta(minutes=20))
    assert len(texts(bot, "with no update posted")) == 1


def test_plan_check_is_only_for_critical(bot: Harness) -> None:
    declare(bot, "sev2 slow search")
    bot.advance(timedelta(minutes=20))
    assert texts(bot, "with no update posted") == []
    assert timers(bot, "plan_check") == []


def test_custom_chain_with_short_ack(standin, database_url) -> None:  # type: ignore[no-untyped-def]
    raw = {**TEST_CONFIG, "severities": {"sev1": {"ack_within": "30s", "escalate_to": ["eng_oncall", "devops"]}}}
    clock = ManualClock(bot_start())
    h = Harness(standin, database_url, parse_config(raw), clock)
    try:
        declare(h)
        h.advance(timedelta(seconds=30))
        assert "<@U0DEVOPS>" in pings(h)[0] and "30s" in pings(h)[0]
        with h.session() as s:
            assert s.get(Incident, 1).escalation_level == 1  # type: ignore[union-attr]
    finally:
        h.close()


def bot_start():  # type: ignore[no-untyped-def]
    from tests.conftest import START

    return START
