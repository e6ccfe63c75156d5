"""Issue 2 acceptance: `python -m bot serve` as a real process against the Slack stand-in."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.harness import sign
from tests.processes import BotProcess, wait_until
from tests.standin import SlackStandin

pytestmark = pytest.mark.process


def test_serve_declares_posts_and_acknowledges(standin: SlackStandin, database_url: str, tmp_path: Path) -> None:
    bot = BotProcess(api_url=standin.api_url, database_url=database_url, log_path=tmp_path / "bot.log").start()
    try:
        assert standin.calls_to("auth.test"), "auth.test goes to SLACK_API_URL at start-up"
        health = httpx.get(bot.url + "/healthz")
        assert health.status_code == 200 and health.json()["db"] == "ok"

        started = time.monotonic()
        response = bot.slash("/incident", "sev1 checkout 500s")
        assert response.status_code == 200 and time.monotonic() - started < 3.0
        assert "INC-1" in response.json()["text"]

        assert wait_until(lambda: standin.posts("C0WARROOM"))
        [post] = standin.posts("C0WARROOM")
        assert post["text"].startswith("INCIDENT [Critical]") and "INC-1" in post["text"]
        buttons = [e["action_id"] for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert buttons == ["incident_ack", "incident_resolve"]

        payload = {"type": "block_actions", "user": {"id": "U0ENG"}, "team": {"id": "T0STANDIN"},
                   "channel": {"id": "C0WARROOM"}, "container": {"type": "message", "channel_id": "C0WARROOM"},
                   "response_url": standin.base_url + "/respond/1", "trigger_id": "t.2",
                   "actions": [{"action_id": "incident_ack", "value": "1", "type": "button", "block_id": "b"}]}
        body = urlencode({"payload": json.dumps(payload)})
        click = httpx.post(bot.url + "/slack/events", content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", **sign(body)})
        assert click.status_code == 200
        assert wait_until(lambda: standin.calls_to("chat.update"))
        update = standin.calls_to("chat.update")[0].args
        assert update["ts"] == standin.calls_to("chat.postMessage")[0].response["ts"]
        assert "Acknowledged by <@U0ENG>" in json.dumps(update["blocks"])
        log = bot.log()
        assert "xoxb-" not in log and "test-signing-secret" not in log
    finally:
        bot.stop()
