"""/decision and /contingency, through the real stack."""

from __future__ import annotations

from datetime import timedelta

from tests.console_helpers import (
    DEVOPS,
    ENG,
    INJECTION,
    STRANGER,
    WAR_ROOM,
    decisions,
    outbox_count,
    slash,
    texts,
)
from tests.harness import Harness
from tests.times import at


def test_anyone_records_a_decision_with_who_and_when(bot: Harness) -> None:
    bot.clock.advance(timedelta(minutes=7))
    out = slash(bot, "/decision", "keep the legacy export running until Friday", user=STRANGER)
    assert out == f"Decision recorded at {at('10:07')}."
    [d] = decisions(bot)
    assert (d.kind, d.actor, d.text, d.incident_id) == ("decision", STRANGER, "keep the legacy export running until Friday", None)
    assert d.created_at == bot.clock.now()
    bot.deliver()
    assert texts(bot)[-1] == f":memo: Decision by <@U0STRANGER> at {at('10:07')}: keep the legacy export running until Friday"
    [event] = bot.events("decision.recorded")
    assert event.actor == STRANGER and event.payload["decision_id"] == d.id


def test_a_decision_naming_an_incident_is_linked_and_on_its_timeline(bot: Harness) -> None:
    slash(bot, "/incident", "sev2 checkout slow")
    slash(bot, "/incident", "sev3 typo on banner")
    slash(bot, "/decision", "disable coupon service until inc-2 and INC-1 are fixed", user=ENG)
    [d] = decisions(bot)
    incidents = bot.incidents()
    assert d.incident_id == incidents[1].id and d.payload["incidents"] == [2, 1]
    bot.deliver()
    posts = bot.posts(WAR_ROOM)
    assert any(p["text"].endswith("(INC-2, INC-1)") and not p.get("thread_ts") for p in posts)
    assert sum(1 for p in posts if p.get("thread_ts") and p["text"].startswith(":memo: Decision")) == 2
    shown = slash(bot, "/incident", "show INC-2")
    assert "recorded by <@U0ENG>" in shown


def test_bad_decisions_store_and_post_nothing(bot: Harness) -> None:
    posts = outbox_count(bot)
    for text, expected in [("", "A decision needs its text"), ("x" * 1001, "keep it to 1000"),
                           ("roll back INC-99 now", "There is no INC-99")]:
        out = slash(bot, "/decision", text)
        assert expected in out and "Usage: /decision" in out
    assert decisions(bot) == [] and outbox_count(bot) == posts


def test_mentions_in_a_decision_are_escaped(bot: Harness) -> None:
    slash(bot, "/decision", INJECTION)
    bot.deliver()
    text = texts(bot)[-1]
    assert "&lt;!channel&gt; &lt;@U0EXEC&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert "<!channel>" not in text and "<@U0EXEC>" not in text
    assert decisions(bot)[0].text == INJECTION  # stored as typed, escaped where shown


def test_contingency_by_name_prefix_and_fuzzy(bot: Harness) -> None:
    out = slash(bot, "/contingency", "SUPABASE", user=STRANGER)
    assert out.startswith("*Supabase latency spike*")
    assert "Immediate action: Reduce polling frequency" in out and "Owner: eng_oncall (<@U0ENG>)" in out
    assert "Notes: Capture query IDs for triage." in out
    assert "*Shopify Admin outage*" in slash(bot, "/contingency", "shopify")
    assert f"Owner: devops (<@{DEVOPS}>)" in slash(bot, "/contingency", "shopfy admin outage")
    out = slash(bot, "/contingency", "metrics")
    assert "Owner: analytics" in out and "<@" not in out.split("Owner: analytics")[1].split("\n")[0]


def test_contingency_list_and_unknown(bot: Harness) -> None:
    out = slash(bot, "/contingency")
    assert out.startswith("Contingency scenarios")
    assert out.count("\n• *") == 5
    out = slash(bot, "/contingency", "<!here> meteor strike")
    assert "No contingency scenario matches `&lt;!here&gt; meteor strike`" in out and "Usage: /contingency" in out
    assert outbox_count(bot) == 0
