"""/role, /roster and the commander check, through the real stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.clock import ManualClock
from commands.config import parse_config
from tests.conftest import TEST_CONFIG
from tests.console_helpers import (
    COMMANDER,
    ENG,
    STRANGER,
    WAR_ROOM,
    assignments,
    outbox_count,
    refusals,
    slash,
    texts,
)
from tests.harness import Harness
from tests.standin import SlackStandin


def test_commander_assigns_a_role_stored_audited_and_announced(bot: Harness) -> None:
    before = len(assignments(bot))
    out = slash(bot, "/role", "eng_oncall <@U0NEWENG|dana>")
    assert "<@U0NEWENG> is now eng_oncall" in out
    rows = assignments(bot)
    assert len(rows) == before + 1
    assert (rows[-1].role, rows[-1].user_id, rows[-1].assigned_by) == ("eng_oncall", "U0NEWENG", COMMANDER)
    event = bot.events("role.assigned")[-1]
    assert event.actor == COMMANDER and event.payload["before"] == ENG and event.payload["user"] == "U0NEWENG"
    bot.deliver()
    assert any("<@U0NEWENG> is now *eng_oncall* (was <@U0ENG>), set by <@U0COMMANDER>" in t for t in texts(bot))
    roster = slash(bot, "/roster", user=STRANGER)
    assert "*eng_oncall*: <@U0NEWENG> (set by <@U0COMMANDER>" in roster
    assert "*exec*: <@U0EXEC> (from the config)" in roster


def test_commander_can_hand_over_and_the_old_one_is_then_refused(bot: Harness) -> None:
    slash(bot, "/role", "commander U0NEWCMD")
    out = slash(bot, "/role", "exec U0OTHER")
    assert "Only the commander can use `/role`" in out and "<@U0NEWCMD>" in out
    assert "is now exec" in slash(bot, "/role", "exec U0OTHER", user="U0NEWCMD")


def test_non_commander_is_refused_with_the_holder_named_and_nothing_changes(bot: Harness) -> None:
    before, posts = len(assignments(bot)), outbox_count(bot)
    out = slash(bot, "/role", "exec <@U0MALLORY>", user=ENG)
    assert out.startswith("Only the commander can use `/role`") and "<@U0COMMANDER>" in out
    assert len(assignments(bot)) == before and outbox_count(bot) == posts
    [refusal] = refusals(bot)
    assert refusal.actor == ENG and refusal.payload["command"] == "/role"


def test_same_holder_again_changes_nothing(bot: Harness) -> None:
    before = len(assignments(bot))
    assert "already holds exec" in slash(bot, "/role", "exec <@U0EXEC>")
    assert len(assignments(bot)) == before


MALFORMED = [
    ("", "Write the role and the person"),
    ("exec", "Write the role and the person"),
    ("exec @alice", "is not a Slack user"),
    ("Exec! U0X", "is not a role name"),
    ("comander U0X", "did you mean `commander`"),
    ("analytcs U0X", "To add a new role"),
    ("<!channel> U0X", "`&lt;!channel&gt;` is not a role name"),
    ("exec <!channel>", "`&lt;!channel&gt;` is not a Slack user"),
    ("exec U0X extra", "Write the role and the person"),
]


def test_malformed_role_commands_store_nothing(bot: Harness) -> None:
    before, posts = len(assignments(bot)), outbox_count(bot)
    for text, expected in MALFORMED:
        out = slash(bot, "/role", text)
        assert expected in out and "Usage: /role" in out, text
        assert "<!channel>" not in out
    assert len(assignments(bot)) == before and outbox_count(bot) == posts


def test_new_role_needs_the_word_new_and_a_role_can_be_vacated(bot: Harness) -> None:
    assert "is now support_lead" in slash(bot, "/role", "support_lead U0SUP new")
    assert "is now support_lead" not in slash(bot, "/role", "support-lead2 U0SUP")
    assert "exec is now unheld" in slash(bot, "/role", "exec none")
    assert "*exec*: unheld" in slash(bot, "/roster")
    # analytics is a contingency owner of the defaults: known without `new`
    assert "is now analytics" in slash(bot, "/role", "analytics U0ANA")


def test_roster_takes_no_arguments(bot: Harness) -> None:
    assert "takes no arguments" in slash(bot, "/roster", "everyone")


@pytest.fixture
def bot_without_commander(standin: SlackStandin, database_url: str, clock: ManualClock) -> Iterator[Harness]:
    raw = {**TEST_CONFIG, "roles": {k: v for k, v in TEST_CONFIG["roles"].items() if k != "commander"}}
    harness = Harness(standin, database_url, parse_config(raw), clock)
    yield harness
    harness.close()


def test_an_empty_commander_seat_is_set_only_by_a_role_holder_and_says_so(bot_without_commander: Harness) -> None:
    bot = bot_without_commander
    out = slash(bot, "/checkpoint", user=STRANGER)
    assert "Nobody holds the commander role yet" in out and "/role commander @user" in out
    assert "Only the commander" in slash(bot, "/role", "exec U0X", user=STRANGER)
    out = slash(bot, "/role", f"commander <@{STRANGER}>", user=STRANGER)  # the seat, and /rollback with it
    assert "only a holder of another launch role" in out
    assert not [e for e in bot.events("role.assigned") if e.payload["role"] == "commander"]
    assert [e.payload["command"] for e in bot.events("command.refused")][-1] == "/role"
    out = slash(bot, "/role", "commander <@U0FIRST>", user="U0ENG")  # eng_oncall holds a role of the launch
    assert out.startswith("There was no commander, so you could set one: <@U0FIRST> is now commander")
    assert bot.events("role.assigned")[-1].payload["bootstrap"] is True
    # the second claim is the commander's to make
    out = slash(bot, "/role", "commander <@U0SECOND>", user=STRANGER)
    assert "Only the commander can use `/role`" in out and "<@U0FIRST>" in out
    bot.deliver()
    assert any("There was no commander, so a holder of another role (or an admin) set one." in t
               for t in texts(bot, WAR_ROOM))
    assert "*exec*: <@U0EXEC>" in slash(bot, "/roster")


def test_an_admin_may_fill_an_empty_seat_and_a_seat_emptied_on_purpose_stays_closed(
        standin: SlackStandin, database_url: str, clock: ManualClock) -> None:
    raw = {**TEST_CONFIG, "admins": ["U0ADMIN"]}
    bot = Harness(standin, database_url, parse_config(raw), clock)
    try:
        assert "commander is now unheld" in slash(bot, "/role", "commander none").lower()
        out = slash(bot, "/role", f"commander <@{STRANGER}>", user=STRANGER)
        assert "only a holder of another launch role or an admin (<@U0ADMIN>)" in out
        assert "Only the commander" in slash(bot, "/rollback", "take over", user=STRANGER)
        assert "is now commander" in slash(bot, "/role", "commander <@U0ADMIN>", user="U0ADMIN")
    finally:
        bot.close()


def test_only_the_owner_or_the_commander_changes_an_incidents_owner(bot: Harness) -> None:
    """The back door: the scribe made himself owner, then resolved what he had been refused."""
    bot.slash("/incident", "sev1 checkout down", user="U0ENG")
    assert "Only the owner of INC-1" in slash(bot, "/incident", "resolve INC-1", user="U0SCRIBE")
    assert "Only the owner of INC-1" in slash(bot, "/incident", "owner INC-1 <@U0SCRIBE>", user="U0SCRIBE")
    assert "Only the owner of INC-1" in bot.slash("/incident", "owner INC-1 <@U0X>", user="U0X", channel="C0OTHER").json()["text"]
    assert bot.incidents()[0].owner == "U0COMMANDER" and bot.incidents()[0].status == "open"
    assert "now owned by <@U0SCRIBE>" in slash(bot, "/incident", "owner INC-1 <@U0SCRIBE>")  # the commander may
