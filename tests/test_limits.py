"""Nobody gets in where they don't belong (issue 18): per-user limits, and a signed request is acted
on at most once whatever its outcome. Through the real stack, with the default limits (20 commands a
minute, 10 declarations an hour)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from bot.clock import ManualClock
from commands.config import parse_config
from tests.conftest import TEST_CONFIG
from tests.harness import Harness, sign
from tests.standin import SlackStandin

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def limited(standin: SlackStandin, database_url: str, clock: ManualClock) -> Iterator[Harness]:
    harness = Harness(standin, database_url, parse_config({**TEST_CONFIG, "limits": None}), clock)
    harness.tick()  # the marks already due at the start, out of the way
    harness.deliver()
    yield harness
    harness.close()


def reply(response: object) -> str:
    return str(response.json()["text"])  # type: ignore[attr-defined]


def test_a_flood_of_declarations_stores_at_most_the_limit(limited: Harness) -> None:
    bot = limited
    before = len(bot.outbox())
    replies = [reply(bot.slash("/incident", f"sev1 flood {i}", user="U0OUTSIDER")) for i in range(60)]
    assert sum("Declared INC-" in r for r in replies) == 10
    refused = [r for r in replies if "Declared" not in r]
    assert len(refused) == 50 and all("try again in" in r for r in refused)
    assert len(bot.incidents()) == 10
    notifications = [m for m in bot.outbox()[before:] if m.kind == "incident.notification"]
    assert len(notifications) == 10  # nothing posted for the refused ones


def test_the_declaration_limit_is_per_hour(limited: Harness) -> None:
    bot = limited
    for i in range(10):
        assert "Declared" in reply(bot.slash("/incident", f"sev3 one of ten {i}", user="U0OUTSIDER"))
    assert "try again in 1h" in reply(bot.slash("/incident", "sev3 eleventh", user="U0OUTSIDER"))
    bot.clock.advance(timedelta(minutes=59))
    assert "try again in 1m" in reply(bot.slash("/incident", "sev3 still too soon", user="U0OUTSIDER"))
    bot.clock.advance(timedelta(minutes=1, seconds=1))
    assert "Declared INC-11" in reply(bot.slash("/incident", "sev3 an hour later", user="U0OUTSIDER"))
    # another user was never held back by the first one's limit
    assert "Declared INC-12" in reply(bot.slash("/incident", "sev3 someone else", user="U0SCRIBE"))


def test_twenty_commands_a_minute_then_try_again(limited: Harness) -> None:
    bot = limited
    for i in range(20):
        assert "recorded" in reply(bot.slash("/decision", f"note {i}", user="U0SCRIBE")).lower()
    refused = reply(bot.slash("/decision", "one too many", user="U0SCRIBE"))
    assert "try again in" in refused and len(bot.events("decision.recorded")) == 20
    bot.clock.advance(timedelta(seconds=61))
    assert "recorded" in reply(bot.slash("/decision", "a minute later", user="U0SCRIBE")).lower()


def test_role_holders_acknowledge_and_the_commander_rolls_back_whatever_they_sent(limited: Harness) -> None:
    bot = limited
    bot.slash("/incident", "sev1 checkout down", user="U0SCRIBE")
    for i in range(20):
        bot.slash("/decision", f"eng note {i}", user="U0ENG")
        bot.slash("/decision", f"commander note {i}", user="U0COMMANDER")
    assert "try again in" in reply(bot.slash("/decision", "over", user="U0ENG"))
    assert "You acknowledged INC-1" in reply(bot.slash("/incident", "ack INC-1", user="U0ENG"))
    out = reply(bot.slash("/rollback", "checkout errors", user="U0COMMANDER"))
    assert "try again" not in out and bot.events("rollback.requested")


def test_a_replay_after_an_error_has_no_effect(limited: Harness) -> None:
    """The same signed `/incident ack INC-2` answered "There is no INC-2" must not acknowledge INC-2
    once it exists: the request's key is kept whatever the outcome."""
    bot = limited
    body = urlencode({"command": "/incident", "text": "ack INC-2", "user_id": "U0ENG", "channel_id": "C0WARROOM",
                      "trigger_id": "trigger.ack-before-declared"})
    headers = {"Content-Type": FORM, **sign(body)}
    first = bot.http.post("/slack/events", content=body.encode(), headers=headers)
    assert first.status_code == 200 and "There is no INC-2" in first.json()["text"]
    bot.slash("/incident", "sev2 first", user="U0SCRIBE")
    bot.slash("/incident", "sev2 second", user="U0SCRIBE")
    again = bot.http.post("/slack/events", content=body.encode(), headers=headers)
    assert again.status_code == 401 and again.json()["error"] == "replayed request"
    assert all(i.acknowledged_at is None for i in bot.incidents())
