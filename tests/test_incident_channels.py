"""Incident channels (INTERFACE "Beyond the war room"): a sev1 gets its own channel, the right people are
invited, the war room links it; a taken name, already_in_channel, restricted_action and a restart half-way
through the set-up, against the Slack stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from commands.config import Config, parse_config
from commands.config_file import ConfigError
from commands.incident_channels import channel_name
from db.channels import IncidentChannel
from db.models import Timer
from tests.conftest import TEST_CONFIG
from tests.console_helpers import COMMANDER, ENG, EXEC, INJECTION, WAR_ROOM, click, message, slash, ts_of
from tests.harness import Harness
from tests.standin import SlackStandin

SUMMARY = "Checkout is slow for some customers"
NAME = "inc-1-checkout-is-slow-for-some-customers"


def channels_config(**section: object) -> Config:
    return parse_config({**TEST_CONFIG, "incident_channels": {"severities": ["sev1"], "prefix": "inc-",
                                                              "archive_after": "24h", **section}})


@pytest.fixture
def bot(standin: SlackStandin, database_url: str, clock: ManualClock) -> Iterator[Harness]:
    harness = Harness(standin, database_url, channels_config(), clock)
    yield harness
    harness.close()


def settle(bot: Harness) -> None:
    bot.runtime.settle()


def rooms(bot: Harness) -> list[IncidentChannel]:
    with bot.session() as s:
        return list(s.exec(select(IncidentChannel).order_by(IncidentChannel.id)).all())


def members(standin: SlackStandin, channel: str) -> set[str]:
    return set(standin.channels[channel]["members"])


def test_a_sev1_opens_one_channel_invites_the_holders_and_the_war_room_links_it(bot: Harness) -> None:
    assert "Declared INC-1" in slash(bot, "/incident", f"sev1 {SUMMARY}")
    settle(bot)
    creates = bot.standin.calls_to("conversations.create")
    assert [c.args["name"] for c in creates] == [NAME]
    channel = bot.standin.channel_named(NAME)
    assert channel is not None
    cid = channel["id"]
    # the owner (the chain's first holder, the commander), the commander and the chain's holders
    assert members(bot.standin, cid) >= {COMMANDER, ENG, EXEC}
    assert len(bot.standin.calls_to("conversations.invite")) == 3
    # the notification with its buttons, in the channel too
    posted = bot.posts(cid)
    assert len(posted) == 1 and "INC-1" in posted[0]["text"]
    actions = [b for b in posted[0]["blocks"] if b["type"] == "actions"]
    assert {e["action_id"] for e in actions[0]["elements"]} == {"incident_ack", "incident_resolve"}
    # the war room's notification links it
    war_room = message(bot, WAR_ROOM, ts_of(bot, "incident:1"))
    assert f"<#{cid}>" in war_room["text"]
    assert rooms(bot)[0].status == "open" and rooms(bot)[0].channel_id == cid
    assert [e.payload["channel"] for e in bot.events("incident.channel_opened")] == [cid]


def test_only_the_listed_severities_get_a_channel_and_a_re_rating_opens_one(bot: Harness) -> None:
    slash(bot, "/incident", "sev2 Search results are stale")
    settle(bot)
    assert bot.standin.attempts("conversations.create") == []
    assert "<#" not in bot.posts(WAR_ROOM)[0]["text"]
    slash(bot, "/incident", "sev INC-1 sev1")
    settle(bot)
    assert [c.args["name"] for c in bot.standin.calls_to("conversations.create")] == ["inc-1-search-results-are-stale"]
    assert rooms(bot)[0].status == "open"


def test_a_taken_name_gets_a_suffix_and_the_war_room_is_told(bot: Harness) -> None:
    bot.standin.add_channel(NAME)
    slash(bot, "/incident", f"sev1 {SUMMARY}")
    settle(bot)
    names = [c.args["name"] for c in bot.standin.attempts("conversations.create")]
    assert names == [NAME, NAME + "-2"]
    cid = bot.standin.channel_named(NAME + "-2")["id"]  # type: ignore[index]
    assert members(bot.standin, cid) >= {COMMANDER, ENG, EXEC}
    notes = [p["text"] for p in bot.standin.thread_posts(WAR_ROOM)]
    assert any(f"{NAME} was taken" in t and f"<#{cid}>" in t for t in notes)
    assert [e.payload["name"] for e in bot.events("incident.channel_name_taken")] == [NAME]


def test_already_in_channel_is_no_failure(bot: Harness) -> None:
    bot.standin.fail("conversations.invite", error="already_in_channel")
    slash(bot, "/incident", f"sev1 {SUMMARY}")
    settle(bot)
    cid = rooms(bot)[0].channel_id
    assert cid is not None
    assert len(bot.standin.attempts("conversations.invite")) == 3  # each once: none sent again
    assert not any("could not invite" in p["text"] for p in bot.posts(WAR_ROOM))
    assert bot.events("incident.channel_invite_failed") == []
    with bot.session() as s:  # no generic "could not deliver" either
        from db.models import OutboxMessage

        assert {r.status for r in s.exec(select(OutboxMessage)).all()} <= {"sent", "superseded", "merged"}


def test_an_invite_slack_refuses_is_said_in_the_thread(bot: Harness) -> None:
    bot.standin.fail("conversations.invite", error="user_not_found")
    slash(bot, "/incident", f"sev1 {SUMMARY}")
    settle(bot)
    failed = [p["text"] for p in bot.standin.thread_posts(WAR_ROOM) if "could not invite" in p["text"]]
    assert len(failed) == 1 and "user_not_found" in failed[0] and "invite them by hand" in failed[0]


def test_a_bot_that_may_not_create_channels_says_so_and_the_incident_goes_on(bot: Harness) -> None:
    bot.standin.fail("conversations.create", error="restricted_action")
    slash(bot, "/incident", f"sev1 {SUMMARY}")
    settle(bot)
    assert rooms(bot)[0].status == "failed" and rooms(bot)[0].error == "restricted_action"
    said = [p for p in bot.standin.thread_posts(WAR_ROOM) if "could not open a channel" in p["text"]]
    assert len(said) == 1 and "restricted_action" in said[0]["text"] and said[0].get("reply_broadcast")
    assert bot.standin.attempts("conversations.invite") == []
    # the incident is not lost: it is open, and its buttons in the war room work
    assert "acknowledged" in click(bot, "incident_ack", "1", ref="incident:1").lower()
    assert bot.incidents()[0].status == "acknowledged"
    assert "<#" not in message(bot, WAR_ROOM, ts_of(bot, "incident:1"))["text"]


@pytest.mark.parametrize("dies", ["after the create", "after the invites were queued"])
def test_a_restart_half_way_through_the_set_up_resumes_it_and_makes_no_second_channel(
        standin: SlackStandin, database_url: str, clock: ManualClock, dies: str) -> None:
    first = Harness(standin, database_url, channels_config(), clock)
    slash(first, "/incident", f"sev1 {SUMMARY}")
    first.deliver()  # the notification and the create went out; the step that follows did not run
    assert len(standin.calls_to("conversations.create")) == 1
    if dies == "after the invites were queued":
        first.tick()  # the create's answer recorded: the channel's post and invites queued, not sent
        assert [m.status for m in first.outbox() if m.method == "conversations.invite"] == ["pending"] * 3
    assert standin.attempts("conversations.invite") == []
    first.close()  # the process dies here

    second = Harness(standin, database_url, channels_config(), clock)
    try:
        second.runtime.settle()
        assert len(standin.attempts("conversations.create")) == 1
        cid = standin.channel_named(NAME)["id"]  # type: ignore[index]
        assert members(standin, cid) >= {COMMANDER, ENG, EXEC}
        assert len(standin.attempts("conversations.invite")) == 3 and len(standin.posts(cid)) == 1
        assert f"<#{cid}>" in message(second, WAR_ROOM, ts_of(second, "incident:1"))["text"]
    finally:
        second.close()


def test_a_new_owner_is_invited_and_hostile_summaries_make_plain_names(bot: Harness) -> None:
    slash(bot, "/incident", f"sev1 {INJECTION}")
    settle(bot)
    [room] = rooms(bot)
    assert room.name == "inc-1-channel-u0exec-https-evil-example-click"
    assert "<!channel>" not in bot.posts(room.channel_id or "")[0]["text"]
    slash(bot, "/incident", "owner INC-1 <@U0DEVOPS>")
    settle(bot)
    assert "U0DEVOPS" in members(bot.standin, room.channel_id or "")


def test_a_new_holder_of_a_role_in_the_chain_joins_the_open_channels(bot: Harness) -> None:
    slash(bot, "/incident", f"sev1 {SUMMARY}")
    slash(bot, "/incident", "sev1 search is down")
    slash(bot, "/incident", "resolve INC-2")
    settle(bot)
    first, second = rooms(bot)
    invites = len(bot.standin.calls_to("conversations.invite"))
    assert "U0NEWENG" not in members(bot.standin, first.channel_id or "")
    assert slash(bot, "/role", "eng_oncall <@U0NEWENG>").startswith("<@U0NEWENG> is now eng_oncall")
    slash(bot, "/role", "scribe <@U0NEWSCRIBE>")  # not in a sev1's chain: not invited
    settle(bot)
    assert "U0NEWENG" in members(bot.standin, first.channel_id or "")
    assert "U0NEWENG" not in members(bot.standin, second.channel_id or "")  # its incident is resolved
    assert len(bot.standin.calls_to("conversations.invite")) == invites + 1


def test_a_create_whose_answer_was_lost_is_looked_up_not_made_twice(
        standin: SlackStandin, database_url: str, clock: ManualClock) -> None:
    bot = Harness(standin, database_url, channels_config(), clock, slack_timeout=0.5)
    try:
        standin.fail("conversations.create", delay=1.5)  # it lands; the answer comes after the client gave up
        slash(bot, "/incident", f"sev1 {SUMMARY}")
        bot.deliver()
        clock.advance(timedelta(minutes=1))
        bot.runtime.settle()
        assert len(standin.attempts("conversations.create")) == 1
        assert len(standin.calls_to("conversations.list")) >= 1  # looked up, found: not created again
        assert len(standin.channels) == 1
        assert rooms(bot)[0].status == "open"
        assert members(standin, rooms(bot)[0].channel_id or "") >= {COMMANDER, ENG, EXEC}
    finally:
        bot.close()


def test_the_channel_is_archived_archive_after_the_resolution(bot: Harness) -> None:
    slash(bot, "/incident", f"sev1 {SUMMARY}")
    settle(bot)
    cid = rooms(bot)[0].channel_id
    slash(bot, "/incident", "resolve INC-1 fixed the pool")
    settle(bot)
    assert "RESOLVED" in message(bot, cid or "", ts_of(bot, "incident:1:room"))["text"]  # its copy too
    bot.clock.advance(timedelta(hours=23, minutes=59))
    settle(bot)
    assert bot.standin.attempts("conversations.archive") == []
    bot.clock.advance(timedelta(minutes=2))
    settle(bot)
    assert [c.args["channel"] for c in bot.standin.calls_to("conversations.archive")] == [cid]
    assert rooms(bot)[0].status == "archived"
    with bot.session() as s:
        assert s.exec(select(Timer).where(Timer.kind == "channel_archive", Timer.done_at.is_(None))).all() == []  # type: ignore[union-attr]


def test_channel_names_follow_slacks_rules() -> None:
    assert channel_name("inc-", 7, "Checkout: 500s (EU) — café!") == "inc-7-checkout-500s-eu-cafe"
    long = channel_name("inc-", 12, "x" * 200, attempt=3)
    assert len(long) <= 80 and long.endswith("-3")
    assert channel_name("inc-", 3, "<!channel> ***") == "inc-3-channel"
    assert channel_name("inc-", 4, "日本語") == "inc-4"


def test_bad_config_is_refused_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as exc:
        channels_config(severities=["sev9"], prefix="INC ", archive_after="soon")
    text = str(exc.value)
    assert "incident_channels.severities" in text and "incident_channels.prefix" in text
    assert "incident_channels.archive_after" in text


def test_the_shell_opens_a_channel_of_its_own(tmp_path: Path) -> None:
    from tests.test_shell import run_piped

    (tmp_path / "warroom.yaml").write_text("incident_channels: {severities: [sev1]}\n", encoding="utf-8")
    out, _, _ = run_piped(tmp_path, ["/incident sev1 Checkout is down", "/incident ack INC-1"])
    assert "bot opened #inc-1-checkout-is-down" in out
    assert "Channel: #inc-1-checkout-is-down" in out
