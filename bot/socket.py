"""Socket Mode (SLACK_APP_TOKEN set): the runtime and Bolt app of `serve`, over a websocket the bot opens
itself (`apps.connections.open` at SLACK_API_URL with the app token), so no public URL is needed."""

from __future__ import annotations

import json
import logging
import signal
import threading

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.config import Env
from bot.runtime import build_runtime
from bot.slack_app import auth_test, build_bolt_app
from bot.transport import SlackTransport, make_client

log = logging.getLogger("warroom.socket")


class AckingHandler(SocketModeHandler):
    """Bolt over the socket; every envelope acked once Bolt is done with it, whatever Bolt answered.

    Bolt's own handler sends no ack unless Bolt answers 200, and Slack then sends the envelope again.
    What Bolt refuses (a malformed payload, a replay, an event nobody listens to) or chokes on (Bolt
    itself raises on some malformed payloads) is acked with no payload: seen, nothing done, and a
    redelivery would be refused the same way. A listener's own failure is already a 200 (on_error).
    """

    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        headers: dict[str, str | list[str]] = {}  # a redelivery says so as over HTTP (X-Slack-Retry-Num)
        if req.retry_attempt is not None:
            headers["x-slack-retry-num"] = str(req.retry_attempt)
        if req.retry_reason:
            headers["x-slack-retry-reason"] = req.retry_reason
        payload = None
        try:
            response = self.app.dispatch(BoltRequest(body=req.payload, headers=headers, mode="socket_mode"))
            if response.status == 200 and response.body:
                content_type = (response.headers.get("content-type") or [""])[0]
                payload = json.loads(response.body) if content_type.startswith("application/json") else {
                    "text": response.body}
            elif response.status != 200:
                log.info("envelope refused", extra={"type": req.type, "status": response.status})
        except Exception:
            log.exception("envelope failed", extra={"type": req.type})
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=payload))


def run_socket_mode(env: Env) -> None:
    if not env.bot_token or not env.app_token:
        raise SystemExit("Socket Mode needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN (see README)")
    client = make_client(env.bot_token, env.api_url, sdk_retries=False)  # views.open: a trigger lives 3 s
    outbox_client = make_client(env.bot_token, env.api_url, timeout=env.slack_timeout, sdk_retries=False)
    runtime = build_runtime(env, SlackTransport(outbox_client))
    identity = auth_test(client)
    bolt: App = build_bolt_app(runtime.dispatcher, client, env.signing_secret or "socket-mode-unused", identity)
    # the client at SLACK_API_URL also asks for the websocket URL (with the app token, not the bot's)
    handler = AckingHandler(bolt, env.app_token, web_client=client)
    stopping = threading.Event()

    def shutdown(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signum})
        stopping.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runtime.start()
    try:
        try:
            handler.connect()
        except SlackApiError as exc:
            error = (exc.response.data or {}).get("error") if isinstance(exc.response.data, dict) else None
            raise SystemExit(f"Socket Mode could not connect: apps.connections.open answered {error or exc}; "
                             "the app token (xapp-…) needs the connections:write scope") from None
        log.info("connected over Socket Mode", extra={"database": env.database_url.split("://")[0]})
        stopping.wait()
    finally:
        handler.close()
        runtime.stop()
