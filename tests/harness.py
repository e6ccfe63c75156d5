"""The real app over real HTTP: waitress serving WarroomApp on 127.0.0.1, Slack-signed requests
in Slack's own payload formats, the Web API stand-in, and a manual clock.

The outbox and the scheduler are driven by the test (`deliver()`, `tick()`) so
every assertion is deterministic; process-level tests run the real loops.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier
from sqlmodel import Session, select
from waitress import wasyncore
from waitress.server import create_server

from bot.clock import ManualClock
from bot.config import Env
from bot.scheduler import run_due
from bot.server import SERVER_SETTINGS
from bot.wsgi import WarroomApp, create_app
from commands.config import Config
from db.models import AuditEvent, Incident, OutboxMessage
from tests.standin import SlackStandin

SECRET = "test-signing-secret-0123456789"
TOKEN = "xoxb-test-token-0123456789"


def sign(body: str, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body),
    }


class Harness:
    def __init__(self, standin: SlackStandin, database_url: str, config: Config, clock: ManualClock, *,
                 slack_timeout: float = 10.0, board_token: str | None = None, **app_kwargs: Any) -> None:
        self.standin = standin
        self.clock = clock
        self.env = Env(bot_token=TOKEN, signing_secret=SECRET, app_token=None, api_url=standin.api_url,
                       database_url=database_url, config_path=None, port=0, log_level="INFO",
                       slack_timeout=slack_timeout, board_token=board_token)
        self.app: WarroomApp = create_app(self.env, config=config, clock=clock, **{"outbox_pace_s": 0.0, **app_kwargs})
        self.runtime = self.app.runtime
        self.config = config
        self.server = create_server(self.app, host="127.0.0.1", port=0, **{**SERVER_SETTINGS, "threads": 8})
        self.url = f"http://127.0.0.1:{self.server.effective_port}"  # type: ignore[union-attr]
        self._serving = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self._trigger = 0
        self._trigger_prefix = uuid.uuid4().hex[:8]  # Slack never reuses a trigger id, not even across restarts

    def _serve(self) -> None:
        while self._serving:
            wasyncore.loop(timeout=0.05, map=self.server._map, count=1)  # type: ignore[union-attr]

    def close(self) -> None:
        self.http.close()
        self._serving = False
        self._thread.join(timeout=5)
        self.server.close()
        self.runtime.stop()

    # -- requests in Slack's formats --------------------------------------
    def post_signed(self, body: str, content_type: str, headers: dict[str, str] | None = None,
                    timestamp: int | None = None) -> httpx.Response:
        return self.http.post("/slack/events", content=body.encode(), headers={
            "Content-Type": content_type, **sign(body, timestamp), **(headers or {})})

    def slash(self, command: str, text: str = "", *, user: str = "U0COMMANDER", channel: str = "C0WARROOM",
              **extra: str) -> httpx.Response:
        self._trigger += 1
        form = {
            "token": "legacy", "team_id": "T0STANDIN", "team_domain": "standin", "channel_id": channel,
            "channel_name": "launch-war-room", "user_id": user, "user_name": user.lower(), "command": command,
            "text": text, "api_app_id": "A0WARROOM", "is_enterprise_install": "false",
            "response_url": f"{self.standin.base_url}/respond/{self._trigger}",
            "trigger_id": f"trigger.{self._trigger_prefix}.{self._trigger}", **extra,
        }
        return self.post_signed(urlencode(form), "application/x-www-form-urlencoded")

    def block_actions(self, action_id: str, value: str, *, user: str = "U0COMMANDER", channel: str = "C0WARROOM",
                      message_ts: str = "1700000000.000100") -> httpx.Response:
        self._trigger += 1
        payload = {
            "type": "block_actions", "team": {"id": "T0STANDIN", "domain": "standin"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0STANDIN"},
            "api_app_id": "A0WARROOM", "token": "legacy", "trigger_id": f"trigger.{self._trigger_prefix}.{self._trigger}",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
            "channel": {"id": channel, "name": "launch-war-room"},
            "message": {"type": "message", "ts": message_ts, "text": "…"},
            "response_url": f"{self.standin.base_url}/respond/{self._trigger}",
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                         "text": {"type": "plain_text", "text": action_id}, "action_ts": str(time.time())}],
        }
        return self.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def view_submission(self, callback_id: str, values: dict[str, Any], *, user: str = "U0COMMANDER") -> httpx.Response:
        self._trigger += 1
        state = {}
        for block, value in values.items():
            if block == "severity":
                state[block] = {"value": {"type": "static_select", "selected_option": {"value": value}}}
            else:
                state[block] = {"value": {"type": "plain_text_input", "value": value}}
        payload = {
            "type": "view_submission", "team": {"id": "T0STANDIN", "domain": "standin"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0STANDIN"},
            "api_app_id": "A0WARROOM", "token": "legacy", "trigger_id": f"trigger.view.{self._trigger_prefix}.{self._trigger}",
            "view": {"id": "V0001", "type": "modal", "callback_id": callback_id, "state": {"values": state},
                     "private_metadata": "", "hash": "h"},
        }
        return self.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def event(self, event: dict[str, Any], *, event_id: str = "Ev0001", retry_num: int | None = None) -> httpx.Response:
        body = json.dumps({"token": "legacy", "team_id": "T0STANDIN", "api_app_id": "A0WARROOM", "event": event,
                           "type": "event_callback", "event_id": event_id, "event_time": int(time.time())})
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else {}
        return self.post_signed(body, "application/json", headers)

    # -- driving time and delivery -----------------------------------------
    def deliver(self) -> int:
        return self.runtime.outbox.drain()

    def tick(self) -> int:
        return run_due(self.runtime.dispatcher)

    def advance(self, delta: timedelta, *, deliver: bool = True) -> int:
        self.clock.advance(delta)
        n = self.tick()
        if deliver:
            self.deliver()
        return n

    # -- looking -----------------------------------------------------------
    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        return self.standin.posts(channel)

    def session(self) -> Session:
        return Session(self.runtime.engine, expire_on_commit=False)

    def incidents(self) -> list[Incident]:
        with self.session() as s:
            return list(s.exec(select(Incident).order_by(Incident.id)).all())

    def events(self, kind: str | None = None) -> list[AuditEvent]:
        with self.session() as s:
            q = select(AuditEvent).order_by(AuditEvent.id)
            if kind:
                q = q.where(AuditEvent.kind == kind)
            return list(s.exec(q).all())

    def outbox(self) -> list[OutboxMessage]:
        with self.session() as s:
            return list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())

    def responses(self) -> list[dict[str, Any]]:
        """Ephemeral replies sent to response_url (button clicks)."""
        return [c.args for c in self.standin.attempts("response_url")]

    def wait_for_responses(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.responses()) < n:
            time.sleep(0.02)
        return self.responses()
