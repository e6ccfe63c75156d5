"""Slack's end of Socket Mode on 127.0.0.1, for tests: a websocket server that greets each connection
with `hello`, sends envelopes as Slack does and records the acks the app sends back.

    web = SlackStandin().start()
    socket = SocketStandin(web).start()        # web answers apps.connections.open with socket.url
    ... start the app with SLACK_API_URL=web.api_url, SLACK_APP_TOKEN=xapp-… ...
    socket.wait_connected()
    sent = socket.send(slash_envelope("/incident", "sev1 checkout down"))
    ack = socket.ack_for(sent)                 # {"envelope_id": …, "payload": {…}} or without payload

Envelopes follow Slack's Socket Mode docs (docs.slack.dev/apis/events-api/using-socket-mode):
`{"envelope_id", "type": "slash_commands"|"interactive"|"events_api", "payload", "accepts_response_payload"}`,
events also with `retry_attempt` and `retry_reason`; an ack is `{"envelope_id", "payload"?}`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.standin import SlackStandin

TEAM = "T0STANDIN"
APP = "A0WARROOM"


@dataclass
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    raw: dict[str, Any]
    at: float


class SocketStandin:
    def __init__(self, web: SlackStandin | None = None) -> None:
        self.web = web
        self.acks: list[Ack] = []
        self.connections: list[ServerConnection] = []
        self.received: list[Any] = []  # every frame the app sent, acks or not
        self._changed = threading.Condition()
        self._server: Server | None = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> SocketStandin:
        self._server = serve(self._session, "127.0.0.1", 0)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="socket-standin").start()
        if self.web is not None:
            self.web.socket_url = self.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    @property
    def url(self) -> str:
        """What apps.connections.open answers: a ws:// URL with a ticket, like Slack's wss:// one."""
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=standin-{uuid.uuid4().hex[:8]}&app_id={APP}"

    def _session(self, connection: ServerConnection) -> None:
        connection.send(json.dumps({
            "type": "hello", "num_connections": 1, "connection_info": {"app_id": APP},
            "debug_info": {"host": "applink-standin", "build_number": 1, "approximate_connection_time": 3600},
        }))
        with self._changed:
            self.connections.append(connection)
            self._changed.notify_all()
        try:
            for raw in connection:
                try:
                    frame = json.loads(raw)
                except (TypeError, ValueError):
                    frame = raw
                with self._changed:
                    self.received.append(frame)
                    if isinstance(frame, dict) and isinstance(frame.get("envelope_id"), str):
                        self.acks.append(Ack(frame["envelope_id"], frame.get("payload"), frame, time.monotonic()))
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                self.connections.remove(connection)
                self._changed.notify_all()

    # -- talking to the app ---------------------------------------------
    def wait_connected(self, timeout: float = 20.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: bool(self.connections), timeout)

    def send(self, envelope: dict[str, Any]) -> str:
        """Send one envelope on the newest connection (Slack may use any open one); its envelope_id."""
        with self._changed:
            if not self.connections:
                raise AssertionError("the app is not connected to the Socket Mode stand-in")
            connection = self.connections[-1]
        connection.send(json.dumps(envelope))
        return str(envelope["envelope_id"])

    def ack_for(self, envelope_id: str, timeout: float = 10.0, *, count: int = 1) -> Ack:
        """The app's `count`-th ack of this envelope id, waiting for it; AssertionError if none comes."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._acks_for(envelope_id)) >= count, timeout):
                raise AssertionError(f"no ack #{count} for envelope {envelope_id} within {timeout}s")
            return self._acks_for(envelope_id)[count - 1]

    def acks_for(self, envelope_id: str) -> list[Ack]:
        with self._changed:
            return self._acks_for(envelope_id)

    def _acks_for(self, envelope_id: str) -> list[Ack]:
        return [a for a in self.acks if a.envelope_id == envelope_id]


# -- Slack's envelopes ---------------------------------------------------
def envelope(kind: str, payload: dict[str, Any], *, accepts_response_payload: bool,
             envelope_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"envelope_id": envelope_id or str(uuid.uuid4()), "type": kind, "payload": payload,
            "accepts_response_payload": accepts_response_payload, **extra}


def redelivered(original: dict[str, Any], *, retry_attempt: int = 1, retry_reason: str = "timeout",
                new_id: bool = False) -> dict[str, Any]:
    """The same envelope again, as Slack sends one it thinks was not acked (same payload)."""
    again = {**original, "retry_attempt": retry_attempt, "retry_reason": retry_reason}
    if new_id:
        again["envelope_id"] = str(uuid.uuid4())
    return again


def slash_envelope(command: str, text: str, *, user: str = "U0COMMANDER", channel: str = "C0WARROOM",
                   trigger: str | None = None, response_url: str = "http://127.0.0.1:9/respond/socket",
                   **override: Any) -> dict[str, Any]:
    payload = {
        "token": "legacy", "team_id": TEAM, "team_domain": "standin", "channel_id": channel,
        "channel_name": "launch-war-room", "user_id": user, "user_name": user.lower(), "command": command,
        "text": text, "api_app_id": APP, "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": trigger or f"{int(time.time())}.{uuid.uuid4().hex[:12]}",
        **override,
    }
    return envelope("slash_commands", payload, accepts_response_payload=True)


def block_actions_envelope(action_id: str, value: str, *, user: str = "U0ENG", channel: str = "C0WARROOM",
                           message_ts: str = "1700000000.000100", response_url: str = "http://127.0.0.1:9/respond/b",
                           **override: Any) -> dict[str, Any]:
    payload = {
        "type": "block_actions", "team": {"id": TEAM, "domain": "standin"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM}, "api_app_id": APP, "token": "legacy",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:12]}",
        "channel": {"id": channel, "name": "launch-war-room"},
        "message": {"type": "message", "ts": message_ts, "text": "…", "bot_id": "B0BOT"},
        "response_url": response_url,
        "actions": [{"action_id": action_id, "block_id": "incident", "value": value, "type": "button",
                     "text": {"type": "plain_text", "text": action_id}, "action_ts": f"{time.time():.6f}"}],
        **override,
    }
    return envelope("interactive", payload, accepts_response_payload=True)


def event_envelope(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    payload = {
        "token": "legacy", "team_id": TEAM, "api_app_id": APP,
        "event": {"ts": ts, "event_ts": ts, "team": TEAM, **event},
        "type": "event_callback", "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM, "user_id": "U0BOT", "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
    }
    return envelope("events_api", payload, accepts_response_payload=False, retry_attempt=0, retry_reason="")
