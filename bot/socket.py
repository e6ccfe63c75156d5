"""Socket Mode (SLACK_APP_TOKEN set): the same Bolt app over a websocket, no public URL needed."""

from __future__ import annotations

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.config import Env
from bot.runtime import build_runtime
from bot.slack_app import auth_test, build_bolt_app
from bot.transport import SlackTransport, make_client


def run_socket_mode(env: Env) -> None:
    client = make_client(env.bot_token, env.api_url, sdk_retries=False)  # views.open: a trigger lives 3 s
    outbox_client = make_client(env.bot_token, env.api_url, timeout=env.slack_timeout, sdk_retries=False)
    runtime = build_runtime(env, SlackTransport(outbox_client))
    identity = auth_test(client)
    bolt = build_bolt_app(runtime.dispatcher, client, env.signing_secret or "socket-mode-unused", identity)
    runtime.start()
    try:
        SocketModeHandler(bolt, env.app_token).start()
    finally:
        runtime.stop()
