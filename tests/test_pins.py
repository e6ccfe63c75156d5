"""The declare_incident message shortcut and :pushpin: reactions into an incident's timeline, through the real
stack in Slack's own payload formats (message_action, reaction_added), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.models.views import View

from bot.clock import ManualClock
from tests.console_helpers import COMMANDER, CX, ENG, INJECTION, WAR_ROOM, slash, ts_of
from tests.harness import Harness
from tests.standin import SlackStandin
from tests.test_incident_channels import channels_config, rooms

TEXT = "Checkout p95 is 4s since the deploy; errors on /pay"


@pytest.fixture
def bot(standin: SlackStandin, database_url: str, clock: ManualClock) -> Iterator[Harness]:
    harness = Harness(standin, database_url, channels_config(), clock)
    yield harness
    harness.close()


def shortcut(bot: Harness, text: str, *, ts: str, channel: str = WAR_ROOM, user: str = ENG, author: str = CX,
             trigger: str = "trigger.shortcut.1") -> httpx.Response:
    """Slack's message_action payload for the declare_incident message shortcut."""
    payload = {
        "type": "message_action", "token": "legacy", "action_ts": str(time.time()),
        "team": {"id": "T0STANDIN", "domain": "standin"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0STANDIN", "name": user.lower()},
        "channel": {"id": channel, "name": "launch-war-room"}, "is_enterprise_install": False, "enterprise": None,
        "callback_id": "declare_incident", "trigger_id": trigger, "api_app_id": "A0WARROOM",
        "response_url": f"{bot.standin.base_url}/respond/shortcut", "message_ts": ts,
        "message": {"client_msg_id": "0b6b6f0e-1", "type": "message", "text": text, "user": author, "ts": ts,
                    "team": "T0STANDIN", "blocks": [{"type": "rich_text", "block_id": "r1", "elements": [
                        {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}]},
    }
    return bot.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


def submit(bot: Harness, values: dict[str, str], private_metadata: str, *, user: str = ENG) -> httpx.Response:
    state = {"severity": {"value": {"type": "static_select", "selected_option": {"value": values["severity"]}}},
             "summary": {"value": {"type": "plain_text_input", "value": values["summary"]}}}
    payload = {"type": "view_submission", "team": {"id": "T0STANDIN", "domain": "standin"},
               "user": {"id": user, "username": user.lower(), "team_id": "T0STANDIN"}, "api_app_id": "A0WARROOM",
               "token": "legacy", "trigger_id": f"trigger.submit.{time.time()}",
               "view": {"id": "V0STANDIN1", "type": "modal", "callback_id": "incident_declare",
                        "state": {"values": state}, "private_metadata": private_metadata, "hash": "h"}}
    return bot.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


def react(bot: Harness, channel: str, ts: str, *, reaction: str = "pushpin", user: str = COMMANDER,
          event_id: str = "Ev0PIN1") -> httpx.Response:
    """Slack's reaction_added event."""
    return bot.event({"type": "reaction_added", "user": user, "reaction": reaction, "item_user": ENG,
                      "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": str(time.time())},
                     event_id=event_id)


def wait_for(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():  # type: ignore[operator]
        time.sleep(0.02)


# -- the declare_incident shortcut -------------------------------------------------------------------------

def test_the_shortcut_opens_the_declare_modal_with_the_message_and_its_link(bot: Harness) -> None:
    ts = bot.standin.add_message(WAR_ROOM, TEXT, user=CX)
    r = shortcut(bot, TEXT, ts=ts)
    assert r.status_code == 200, r.text
    opened = bot.standin.calls_to("views.open")
    assert len(opened) == 1  # opened first, in the request: the trigger id lives 3 s
    view = opened[0].args["view"]
    View(**view).validate_json()
    summary = next(b for b in view["blocks"] if b["block_id"] == "summary")
    assert summary["element"]["initial_value"] == TEXT
    wait_for(lambda: bot.standin.calls_to("views.update"))
    [permalink] = bot.standin.calls_to("chat.getPermalink")
    assert permalink.args["channel"] == WAR_ROOM and permalink.args["message_ts"] == ts
    link = f"https://standin.slack.com/archives/{WAR_ROOM}/p{ts.replace('.', '')}"
    updated = bot.standin.calls_to("views.update")[0].args
    assert updated["view_id"] == "V0STANDIN1" and updated["view"]["private_metadata"] == link
    View(**updated["view"]).validate_json()
    assert any(link in json.dumps(b) for b in updated["view"]["blocks"] if b["type"] == "context")

    r = submit(bot, {"severity": "sev2", "summary": TEXT}, link)
    assert r.status_code == 200 and r.text in ("", "{}"), r.text
    [incident] = bot.incidents()
    assert incident.summary == TEXT and incident.source == link and incident.declared_by == ENG
    assert f"Declared from: {link}" in slash(bot, "/incident", "show INC-1")


def test_the_shortcut_clips_long_text_and_keeps_user_text_as_written(bot: Harness) -> None:
    text = INJECTION + " " + "x" * 900
    assert shortcut(bot, text, ts="1700000500.000100").status_code == 200
    view = bot.standin.calls_to("views.open")[0].args["view"]
    initial = next(b for b in view["blocks"] if b["block_id"] == "summary")["element"]["initial_value"]
    assert initial == text[:500] and len(initial) <= 500  # plain text: no &lt; in the form
    View(**view).validate_json()


def test_a_link_that_is_not_a_slack_permalink_is_not_kept(bot: Harness) -> None:
    r = submit(bot, {"severity": "sev3", "summary": "Stale search"}, "https://evil.example/phish")
    assert r.status_code == 200
    assert bot.incidents()[0].source is None


def test_a_replayed_shortcut_is_refused(bot: Harness) -> None:
    assert shortcut(bot, TEXT, ts="1700000500.000100", trigger="trigger.same").status_code == 200
    assert shortcut(bot, TEXT, ts="1700000500.000100", trigger="trigger.same").status_code == 401
    assert len(bot.standin.calls_to("views.open")) == 1


def test_a_malformed_shortcut_is_refused_with_400(bot: Harness) -> None:
    payload = {"type": "message_action", "callback_id": "declare_incident", "trigger_id": "t",
               "user": {"id": ENG}, "channel": {"id": "not a channel"}, "message": {"ts": "1.2", "text": "x"}}
    r = bot.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
    assert r.status_code == 400 and bot.standin.calls_to("views.open") == []


# -- :pushpin: into the timeline ---------------------------------------------------------------------------

def declared_with_channel(bot: Harness) -> str:
    slash(bot, "/incident", "sev1 Checkout is slow for some customers")
    bot.runtime.settle()
    cid = rooms(bot)[0].channel_id
    assert cid is not None
    return cid


def test_a_pushpin_in_the_incident_channel_adds_the_message_to_the_timeline(bot: Harness) -> None:
    cid = declared_with_channel(bot)
    ts = bot.standin.add_message(cid, "Rolled back build 1432; p95 back to 300 ms", user=ENG)
    assert react(bot, cid, ts).status_code == 200
    bot.runtime.settle()
    [pinned] = bot.events("incident.pinned")
    assert pinned.incident_id == bot.incidents()[0].id and pinned.actor == COMMANDER
    assert pinned.payload["text"] == "Rolled back build 1432; p95 back to 300 ms"
    assert pinned.payload["author"] == ENG and pinned.payload["message_ts"] == ts
    [read] = bot.standin.calls_to("conversations.history")
    assert read.args["channel"] == cid and read.args["latest"] == ts
    shown = slash(bot, "/incident", "show INC-1")
    assert "pinned by <@U0COMMANDER>: <@U0ENG> at" in shown and "Rolled back build 1432" in shown
    # in the exports and the retrospective
    slash(bot, "/export", "ndjson", user=CX)
    slash(bot, "/export", "md", user=CX)
    bot.deliver()
    files = [b.decode() for b in bot.standin.uploads.values()]
    assert any('"incident.pinned"' in f and "Rolled back build 1432" in f for f in files)
    assert any("`incident.pinned`" in f and "Rolled back build 1432" in f for f in files)


def test_a_pushpin_on_a_reply_in_the_incidents_war_room_thread(bot: Harness) -> None:
    declared_with_channel(bot)
    parent = ts_of(bot, "incident:1")
    ts = bot.standin.add_message(WAR_ROOM, "DB pool exhausted at 10:02", user=ENG, thread_ts=parent)
    react(bot, WAR_ROOM, ts)
    bot.runtime.settle()
    [pinned] = bot.events("incident.pinned")
    assert pinned.payload["text"] == "DB pool exhausted at 10:02"
    assert bot.standin.calls_to("conversations.replies", channel=WAR_ROOM, ts=ts)


def test_a_pushpin_on_a_reply_in_a_thread_of_the_incident_channel(bot: Harness) -> None:
    cid = declared_with_channel(bot)
    top = bot.standin.add_message(cid, "Looking at the pool", user=ENG)
    ts = bot.standin.add_message(cid, "Found it: max_connections=10", user=ENG, thread_ts=top)
    react(bot, cid, ts)
    bot.runtime.settle()
    assert [e.payload["text"] for e in bot.events("incident.pinned")] == ["Found it: max_connections=10"]


def test_pushpins_elsewhere_twice_or_of_other_kinds_add_nothing_more(bot: Harness) -> None:
    cid = declared_with_channel(bot)
    lone = bot.standin.add_message(WAR_ROOM, "Lunch is here", user=CX)  # in the war room, in no incident's thread
    react(bot, WAR_ROOM, lone, event_id="Ev1")
    other = bot.standin.add_message("C0ELSEWHERE", "Unrelated", user=CX)
    react(bot, "C0ELSEWHERE", other, event_id="Ev2")
    ts = bot.standin.add_message(cid, "Error rate 4%", user=ENG)
    react(bot, cid, ts, reaction="eyes", event_id="Ev3")
    bot.runtime.settle()
    assert bot.events("incident.pinned") == []
    react(bot, cid, ts, event_id="Ev4")
    react(bot, cid, ts, user=ENG, event_id="Ev5")  # a second person pins the same message
    bot.runtime.settle()
    react(bot, cid, ts, user=CX, event_id="Ev6")
    bot.runtime.settle()
    assert [e.payload["text"] for e in bot.events("incident.pinned")] == ["Error rate 4%"]
    assert bot.standin.calls_to("conversations.history", channel="C0ELSEWHERE") == []


def test_a_message_slack_will_not_show_is_noted_not_pinned(bot: Harness) -> None:
    cid = declared_with_channel(bot)
    bot.standin.fail("conversations.history", error="not_in_channel")
    react(bot, cid, "1700000999.000100")
    bot.runtime.settle()
    assert bot.events("incident.pinned") == []
    assert [e.payload["error"] for e in bot.events("incident.pin_unread")] == ["not_in_channel"]
    assert not any("could not" in p["text"] for p in bot.posts(WAR_ROOM))


def test_a_malformed_reaction_event_is_refused_with_400(bot: Harness) -> None:
    r = bot.event({"type": "reaction_added", "user": ENG, "reaction": "pushpin",
                   "item": {"type": "message", "channel": "<!channel>", "ts": "1.2"}})
    assert r.status_code == 400
    assert bot.standin.calls_to("conversations.history") == []
