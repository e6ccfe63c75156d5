"""App Home: `app_home_opened` in Slack's format publishes the launch at a glance; a change republishes it
for recent viewers (debounced); its Acknowledge button works as the channel's does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from slack_sdk.models.views import View

from commands.home import CHECK_EVERY, PUBLISH_KEY, STALE_AFTER
from tests.harness import Harness
from tests.times import at

ROOT = Path(__file__).resolve().parent.parent


def home_opened(bot: Harness, user: str, *, event_id: str, tab: str = "home", retry_num: int | None = None) -> Any:
    """The event as Slack sends it (its `view` is there once a home was published)."""
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": tab,
             "event_ts": f"{time.time():.6f}",
             "view": {"id": "V0HOME", "team_id": "T0STANDIN", "type": "home", "blocks": [], "private_metadata": "",
                      "callback_id": "warroom_home", "hash": "1700000000.abc", "state": {"values": {}}}}
    r = bot.event(event, event_id=event_id, retry_num=retry_num)
    assert r.status_code == 200
    return r


def home_click(bot: Harness, action_id: str, value: str, user: str) -> Any:
    """A button pressed on App Home, as Slack sends it: the container is the view, no channel, no response_url."""
    payload = {
        "type": "block_actions", "team": {"id": "T0STANDIN", "domain": "standin"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0STANDIN"}, "api_app_id": "A0WARROOM",
        "token": "legacy", "trigger_id": f"trigger.home.{time.time()}",
        "container": {"type": "view", "view_id": "V0HOME"},
        "view": {"id": "V0HOME", "team_id": "T0STANDIN", "type": "home", "blocks": [], "private_metadata": "",
                 "callback_id": "warroom_home", "hash": "h", "state": {"values": {}}},
        "actions": [{"type": "button", "action_id": action_id, "block_id": f"incident_{value}", "value": value,
                     "text": {"type": "plain_text", "text": "Acknowledge"}, "action_ts": str(time.time())}],
    }
    return bot.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


def publishes(bot: Harness, user: str | None = None) -> list[dict[str, Any]]:
    calls = [c.args for c in bot.standin.calls_to("views.publish")]
    return [c for c in calls if user is None or c["user_id"] == user]


def shown(view: dict[str, Any]) -> str:
    """Every text of the view, and each button as `[action_id value]`."""
    out = []
    for block in view["blocks"]:
        for obj in (block.get("text"), *block.get("elements", [])):
            if isinstance(obj, dict) and "text" in obj:
                out.append(obj["text"])
        if block.get("accessory"):
            out.append(f"[{block['accessory']['action_id']} {block['accessory']['value']}]")
    return "\n".join(out)


def valid(view: dict[str, Any]) -> dict[str, Any]:
    View(**view).validate_json()  # slack_sdk's own model of a view
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    return view


def test_app_home_opened_publishes_the_launch_its_incidents_and_the_viewers_roles(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.slash("/decision", "freeze deploys until T+4h")
    bot.deliver()
    home_opened(bot, "U0ENG", event_id="Ev1")
    bot.deliver()
    [call] = publishes(bot)
    assert call["user_id"] == "U0ENG" and "channel" not in call
    view = valid(call["view"])
    text = shown(view)
    assert "HotDash Control Center" in text and "*T0*" in text
    assert "*Open incidents: 1*" in text
    assert f"*INC-1* · Critical · checkout 500s\nOwner <@U0COMMANDER> · open 0s (since {at('10:00')}) · *not acknowledged*" in text
    assert "[incident_ack 1]" in text
    assert "*Next heartbeat*: none scheduled" in text and f"*Next checkpoint*: {at('11:00')} (T+1h)" in text
    assert f"*Next mark*: *T+15m* at {at('10:15')}: Verify metrics" in text
    assert f"• {at('10:00')} <@U0COMMANDER> (decision): freeze deploys until T+4h" in text
    assert "*Your roles*: eng_oncall" in text
    block_ids = [b["block_id"] for b in view["blocks"] if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))


def test_only_the_home_tab_publishes_and_a_retried_event_publishes_once(bot: Harness) -> None:
    home_opened(bot, "U0ENG", event_id="EvMsg", tab="messages")
    bot.deliver()
    assert publishes(bot) == []
    home_opened(bot, "U0ENG", event_id="Ev2")
    home_opened(bot, "U0ENG", event_id="Ev2", retry_num=1)
    bot.deliver()
    assert len(publishes(bot)) == 1
    home_opened(bot, "U0ENG", event_id="Ev3")  # opened again at once, nothing changed: Slack still shows it
    bot.deliver()
    assert len(publishes(bot)) == 1


def test_a_new_incident_republishes_for_recent_viewers_once_per_check(bot: Harness) -> None:
    home_opened(bot, "U0ENG", event_id="Ev1")
    home_opened(bot, "U0CX", event_id="Ev2")
    bot.deliver()
    assert "(none)" in shown(publishes(bot, "U0ENG")[0]["view"])
    bot.slash("/incident", "sev2 checkout slow")
    bot.slash("/incident", "sev3 banner typo")  # two changes within one check: one publish each
    bot.advance(CHECK_EVERY)
    for user in ("U0ENG", "U0CX"):
        views = publishes(bot, user)
        assert len(views) == 2
        text = shown(valid(views[-1]["view"]))
        assert "*INC-1* · High · checkout slow" in text and "*INC-2* · Medium · banner typo" in text
    assert {m.channel for m in bot.outbox() if m.method == "views.publish"} == {PUBLISH_KEY}  # one pace for all
    bot.advance(CHECK_EVERY)  # nothing changed: nothing sent
    assert len(publishes(bot)) == 4
    bot.advance(STALE_AFTER)  # the ages and T-minus it shows are refreshed
    assert len(publishes(bot)) == 6
    assert "open 5m" in shown(publishes(bot, "U0ENG")[-1]["view"])


def test_acknowledge_on_app_home_works_as_in_the_channel_and_shows_the_outcome(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.deliver()
    home_opened(bot, "U0ENG", event_id="Ev1")
    bot.deliver()
    r = home_click(bot, "incident_ack", "1", "U0ENG")
    assert r.status_code == 200
    bot.deliver()
    [incident] = bot.incidents()
    assert incident.acknowledged_by == "U0ENG" and incident.status == "acknowledged"
    assert any("INC-1 acknowledged by <@U0ENG>" in p["text"] for p in bot.posts("C0WARROOM"))  # its thread
    assert bot.standin.calls_to("chat.update")  # the channel's message shows it
    view = valid(publishes(bot, "U0ENG")[-1]["view"])
    text = shown(view)
    assert "[incident_ack" not in text and f"acknowledged by <@U0ENG> at {at('10:00')}" in text
    assert view["blocks"][0]["type"] == "context" and "INC-1" in text.split("\n")[0]  # what came of the click
    assert bot.events("incident.acknowledged")[0].actor == "U0ENG"


def test_user_text_on_app_home_cannot_ping_or_link(bot: Harness) -> None:
    bot.slash("/incident", "sev2 <!channel> <@U0EXEC> <script>x</script> & co")
    bot.deliver()
    home_opened(bot, "U0CX", event_id="Ev1")
    bot.deliver()
    text = shown(valid(publishes(bot)[0]["view"]))
    assert "&lt;!channel&gt; &lt;@U0EXEC&gt; &lt;script&gt;x&lt;/script&gt; &amp; co" in text
    assert "<!channel>" not in text and "<script>" not in text


def test_the_manifest_enables_the_home_tab_and_its_event() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_a_home_slack_refuses_is_kept_and_logged_not_told_to_the_war_room(bot: Harness) -> None:
    bot.standin.fail("views.publish", error="not_enabled")
    home_opened(bot, "U0ENG", event_id="Ev1")
    bot.deliver()
    [row] = [m for m in bot.outbox() if m.method == "views.publish"]
    assert row.status == "failed" and row.error == "not_enabled"
    assert bot.events("outbox.undeliverable")[0].payload["message_kind"] == "home.publish"
    assert not [p for p in bot.posts("C0WARROOM") if "could not deliver" in p["text"]]


def test_a_long_list_of_incidents_stays_within_slacks_limits(bot: Harness) -> None:
    for n in range(30):
        bot.slash("/incident", f"sev4 {'x' * 490} {n}")
    home_opened(bot, "U0ENG", event_id="Ev1")
    bot.deliver()
    view = valid(publishes(bot)[0]["view"])  # the stand-in holds it to Block Kit's limits too
    text = shown(view)
    assert "*Open incidents: 30*" in text and "…and 5 more" in text
    assert "*INC-25*" in text and "*INC-26*" not in text
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in view["blocks"])
