"""Block Kit as Slack enforces it: the stand-in refuses what Slack refuses, and everything the bot
posts or opens (checkpoint, polls, rollback, incidents, the declare modal) passes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import select

from bot.clock import ManualClock
from commands.config import MAX_ROLLBACK_STEPS, Config, ConfigError, parse_config
from db.models import Checkpoint, OutboxMessage, Poll, Rollback
from tests.conftest import TEST_CONFIG
from tests.console_helpers import COMMANDER, CX, ENG, EXEC, OPERATORS, WAR_ROOM, click, message, slash, ts_of
from tests.faults import DELIVERED
from tests.harness import Harness
from tests.standin import SlackStandin
from tests.test_shell import after, in_process


def button(action_id: str, value: str = "v", label: str = "Press") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "value": value, "text": {"type": "plain_text", "text": label}}


def section(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def actions(*elements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements), **extra}


@pytest.fixture
def client(standin: SlackStandin) -> WebClient:
    return WebClient(token="xoxb-test", base_url=standin.api_url)


def refusal(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as raised:
        call()
    assert raised.value.response.status_code == 200  # Slack refuses blocks with HTTP 200 and ok false
    return raised.value


# -- (a) the stand-in holds payloads to Slack's rules ------------------------------------------------

def test_standin_accepts_a_well_formed_message(standin: SlackStandin, client: WebClient) -> None:
    blocks = [section(block_id="top"),
              actions(button("checkpoint_decision:widen", "widen"), button("checkpoint_decision:hold", "hold")),
              actions(button("checkpoint_decision:widen", "widen"))]  # one action_id in two blocks: allowed
    assert client.chat_postMessage(channel=WAR_ROOM, text="fine", blocks=blocks)["ok"]
    assert client.chat_postMessage(channel=WAR_ROOM, text="x", blocks=[section(str(i)) for i in range(50)])["ok"]
    assert standin.rejected() == [] and len(standin.posts(WAR_ROOM)) == 2


REFUSED: dict[str, tuple[list[dict[str, Any]], str]] = {
    "two buttons with one action_id in a block": (
        [section(), actions(button("gonogo_vote", "go"), button("gonogo_vote", "nogo"))],
        "action_id already exists [json-pointer:/blocks/1/elements/1/action_id]"),
    "two blocks with one block_id": (
        [section(block_id="same"), section("again", block_id="same")],
        "block_id already exists [json-pointer:/blocks/1/block_id]"),
    "51 blocks": ([section(str(i)) for i in range(51)], "no more than 50 items [json-pointer:/blocks]"),
    "a text over 3000 characters": ([section("x" * 3001)], "less than 3001 characters"),
    "a header over 150 characters": (
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "less than 151 characters"),
    "26 elements in an actions block": (
        [actions(*(button(f"b{i}") for i in range(26)))], "no more than 25 items [json-pointer:/blocks/0/elements]"),
    "a button label slack_sdk finds too long": ([actions(button("b", label="L" * 76))], "75"),
    "a block type Slack does not know": ([{"type": "sparkles", "text": "x"}], "unknown block type"),
}


@pytest.mark.refused_blocks
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_standin_refuses_blocks_slack_refuses(standin: SlackStandin, client: WebClient, case: str) -> None:
    blocks, reason = REFUSED[case]
    error = refusal(lambda: client.chat_postMessage(channel=WAR_ROOM, text="t", blocks=blocks))
    assert error.response["error"] == "invalid_blocks"
    assert any(reason in r for r in error.response["errors"]), error.response["errors"]
    [rejected] = standin.rejected("invalid_blocks")
    assert rejected.method == "chat.postMessage" and standin.posts() == []


@pytest.mark.refused_blocks
def test_standin_checks_updates_ephemerals_views_and_response_urls(standin: SlackStandin, client: WebClient) -> None:
    twice = [actions(button("incident_ack", "1"), button("incident_ack", "2"))]
    ts = client.chat_postMessage(channel=WAR_ROOM, text="first")["ts"]
    assert refusal(lambda: client.chat_update(channel=WAR_ROOM, ts=ts, text="t", blocks=twice)) \
        .response["error"] == "invalid_blocks"
    assert refusal(lambda: client.chat_postEphemeral(channel=WAR_ROOM, user=ENG, text="t", blocks=twice)) \
        .response["error"] == "invalid_blocks"
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Too many"},
             "blocks": [section(str(i)) for i in range(101)]}
    assert refusal(lambda: client.views_open(trigger_id="t.1", view=modal)).response["error"] == "invalid_blocks"
    assert client.views_open(trigger_id="t.2", view={**modal, "blocks": modal["blocks"][:100]})["ok"]
    home = {"type": "home", "blocks": [section(block_id="b"), section(block_id="b")]}
    assert refusal(lambda: client.views_publish(user_id=ENG, view=home)).response["error"] == "invalid_blocks"
    long_title = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "blocks": [section()]}
    assert refusal(lambda: client.views_update(view_id="V1", view=long_title)).response["error"] == "invalid_blocks"
    answer = httpx.post(f"{standin.base_url}/respond/1", json={"text": "t", "blocks": twice})
    assert answer.status_code == 200 and answer.json()["error"] == "invalid_blocks"
    assert Counter(c.method for c in standin.rejected("invalid_blocks")) == Counter(
        {"chat.update": 1, "chat.postEphemeral": 1, "views.open": 1, "views.publish": 1, "views.update": 1,
         "response_url": 1})
    assert refusal(lambda: client.chat_postMessage(channel=WAR_ROOM, text="x" * 40_001)) \
        .response["error"] == "msg_too_long"
    assert refusal(lambda: client.chat_postMessage(channel=WAR_ROOM, text="t", blocks=[
        section("x" * 3000) for _ in range(5)])).response["error"] == "msg_blocks_too_long"
    [first] = standin.messages[WAR_ROOM]
    assert first["ts"] == ts and first["text"] == "first"  # the refused update changed nothing


# -- (b) what the bot sends, through the real stack, passes ------------------------------------------

def sent_cleanly(bot: Harness) -> None:
    """Slack would have taken everything: nothing refused, every outbox row delivered (sent, or carried in
    another reply's post, or superseded by a newer update of its message)."""
    assert bot.standin.rejected() == []
    with bot.session() as s:
        rows = s.exec(select(OutboxMessage)).all()
    assert rows and all(r.status in DELIVERED for r in rows), [(r.kind, r.status, r.error) for r in rows]


def action_ids(post: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in post.get("blocks") or [] for e in b.get("elements", []) if "action_id" in e]


def test_checkpoint_message_is_accepted(bot: Harness) -> None:
    slash(bot, "/checkpoint", "first business checkpoint")
    bot.deliver()
    sent_cleanly(bot)
    posted = bot.posts(WAR_ROOM)[-1]
    assert "*Checkpoint*" in posted["text"]
    assert action_ids(posted) == ["checkpoint_decision:continue", "checkpoint_decision:widen",
                                  "checkpoint_decision:hold", "checkpoint_decision:rollback"]


@pytest.mark.parametrize("command,ids", [("/gonogo", ["gonogo_vote:go", "gonogo_vote:nogo"]),
                                         ("/signoff", ["signoff_vote:accepted", "signoff_vote:rollback"])])
def test_polls_are_accepted_open_and_closed(bot: Harness, command: str, ids: list[str]) -> None:
    slash(bot, command)
    bot.deliver()
    posted = bot.posts(WAR_ROOM)[-1]
    assert action_ids(posted) == ids
    choice = ids[0].partition(":")[2]
    for user in (COMMANDER, ENG, CX, EXEC):
        slash(bot, command, choice, user=user)
    bot.deliver()
    with bot.session() as s:
        [poll] = s.exec(select(Poll)).all()
    assert poll.closed_at is not None
    sent_cleanly(bot)
    assert action_ids(message(bot, WAR_ROOM, ts_of(bot, f"poll:{poll.id}"))) == []  # closed: no buttons


def test_rollback_confirmation_and_checklist_are_accepted(bot: Harness) -> None:
    slash(bot, "/rollback", "checkout errors")
    bot.deliver()
    with bot.session() as s:
        [rollback] = s.exec(select(Rollback)).all()
    assert action_ids(bot.posts(WAR_ROOM)[-1]) == ["rollback_confirm", "rollback_cancel"]
    assert click(bot, "rollback_confirm", str(rollback.id), ref=f"rollback:{rollback.id}").startswith(
        "Rollback initiated")
    bot.deliver()
    checklist = message(bot, WAR_ROOM, ts_of(bot, f"rollback_steps:{rollback.id}"))
    steps = [b for b in checklist["blocks"] if b.get("accessory")]
    assert len(steps) == len(bot.config.rollback_steps) > 1
    assert len({b["block_id"] for b in steps}) == len(steps)  # one block per step, each its own block_id
    click(bot, "rollback_step", steps[0]["accessory"]["value"], ref=f"rollback_steps:{rollback.id}")
    bot.deliver()
    assert any(p["text"].startswith("Rollback initiated at") for p in bot.posts(OPERATORS))
    sent_cleanly(bot)


def test_incident_declaration_ack_and_resolve_are_accepted(bot: Harness) -> None:
    slash(bot, "/incident", "sev1 checkout returns 500s")
    bot.deliver()
    assert action_ids(bot.posts(WAR_ROOM)[0]) == ["incident_ack", "incident_resolve"]
    bot.block_actions("incident_ack", "1", user=ENG)
    bot.block_actions("incident_resolve", "1")
    bot.deliver()
    assert bot.posts(WAR_ROOM)[0]["text"].startswith("INCIDENT [Critical]")
    assert bot.standin.calls_to("chat.update")  # the incident message was updated with its new state
    sent_cleanly(bot)


def test_declare_modal_is_accepted(bot: Harness) -> None:
    assert bot.slash("/incident", "").status_code == 200
    [opened] = bot.standin.attempts("views.open")
    assert opened.response["ok"], opened.response
    assert opened.args["view"]["callback_id"] == "incident_declare"
    assert bot.standin.rejected() == []


def test_the_longest_rollback_checklist_the_config_allows_is_accepted(standin: SlackStandin, database_url: str,
                                                                      clock: ManualClock) -> None:
    raw = {**TEST_CONFIG, "rollback": {"steps": [f"step {i}" for i in range(1, MAX_ROLLBACK_STEPS + 1)]}}
    with pytest.raises(ConfigError, match=r"rollback\.steps: has 49 steps"):
        parse_config({**raw, "rollback": {"steps": raw["rollback"]["steps"] + ["one more"]}})
    bot = Harness(standin, database_url, parse_config(raw), clock)
    try:
        confirm_a_rollback(bot)
        sent_cleanly(bot)
    finally:
        bot.close()


@pytest.mark.refused_blocks
def test_a_message_slack_refuses_is_marked_failed(standin: SlackStandin, database_url: str, config: Config,
                                                  clock: ManualClock) -> None:
    # past the config's limit (as a config could be written by hand): the checklist breaks Slack's 50 blocks
    steps = tuple(f"step {i}" for i in range(60))
    too_long = config.model_copy(update={"rollback": config.rollback.model_copy(update={"steps": steps})})
    bot = Harness(standin, database_url, too_long, clock)
    try:
        confirm_a_rollback(bot)
        [refused] = standin.rejected("invalid_blocks")
        assert "no more than 50 items" in refused.response["errors"][0]
        with bot.session() as s:
            [row] = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "rollback.checklist")).all()
        assert (row.status, row.error, row.attempts) == ("failed", "invalid_blocks", 1)  # permanent: not retried
    finally:
        bot.close()


def confirm_a_rollback(bot: Harness) -> None:
    slash(bot, "/rollback", "checkout errors")
    bot.deliver()
    with bot.session() as s:
        [rollback] = s.exec(select(Rollback)).all()
    click(bot, "rollback_confirm", str(rollback.id), ref=f"rollback:{rollback.id}")
    bot.deliver()


# -- (c) the new ids and the bare names both press the buttons ---------------------------------------

@pytest.mark.parametrize("action_id", ["checkpoint_decision:widen", "checkpoint_decision"])
def test_checkpoint_widen_is_pressed_by_either_id(bot: Harness, action_id: str) -> None:
    slash(bot, "/checkpoint")
    bot.deliver()
    with bot.session() as s:
        ref = f"checkpoint:{s.exec(select(Checkpoint)).one().id}"
    assert click(bot, action_id, "widen", ref=ref) == "Decision recorded: widen."
    bot.deliver()
    assert action_ids(message(bot, WAR_ROOM, ts_of(bot, ref))) == []  # decided: the buttons are gone
    sent_cleanly(bot)


@pytest.mark.parametrize("action_id", ["gonogo_vote:nogo", "gonogo_vote"])
def test_gonogo_nogo_is_pressed_by_either_id(bot: Harness, action_id: str) -> None:
    slash(bot, "/gonogo")
    bot.deliver()
    with bot.session() as s:
        [poll] = s.exec(select(Poll)).all()
    assert click(bot, action_id, "nogo", user=ENG, ref=f"poll:{poll.id}").startswith("Your vote (nogo) is recorded as eng_oncall.")
    bot.deliver()
    assert "eng_oncall" in message(bot, WAR_ROOM, ts_of(bot, f"poll:{poll.id}"))["text"]
    sent_cleanly(bot)


def test_an_unknown_name_before_the_colon_is_still_unknown(bot: Harness) -> None:
    assert click(bot, "launch_the_rockets:now", "now") == "That button is not one warroom knows."


def test_the_shell_presses_by_either_id(tmp_path: Path) -> None:
    out = in_process(tmp_path, ["/checkpoint", ":press checkpoint_decision:hold hold", "/checkpoint again",
                                ":press checkpoint_decision widen", ":quit"])
    assert "[Hold] :press checkpoint_decision hold" in after(out, "/checkpoint")
    assert "Decision recorded: hold." in after(out, ":press checkpoint_decision:hold hold")
    assert "Decision recorded: widen." in after(out, ":press checkpoint_decision widen")
