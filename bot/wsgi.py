"""The HTTP app: `POST /slack/events` (commands, events, interactivity) and `GET /healthz`.

`app` is the same WSGI app for any WSGI server: `gunicorn bot.wsgi:app`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import func
from sqlmodel import Session, select

from bot.config import Env
from bot.runtime import Runtime, build_runtime
from bot.slack_app import auth_test, build_bolt_app
from bot.transport import SlackTransport, make_client
from db.models import OutboxMessage
from db.session import ping

STUCK_AFTER = timedelta(minutes=5)


class WarroomApp:
    def __init__(self, runtime: Runtime, bolt: App) -> None:
        self.runtime = runtime
        self.slack = SlackRequestHandler(bolt, path="/slack/events")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            status, body = self.health()
            return _json(start_response, status, body)
        if path == "/slack/events":
            if environ.get("REQUEST_METHOD") != "POST":
                return _json(start_response, 405, {"error": "POST only"})
            return self.slack(environ, start_response)
        return _json(start_response, 404, {"error": "not found"})

    def health(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {}
        try:
            ping(self.runtime.engine)
            body["db"] = "ok"
        except Exception as exc:
            body["db"] = f"unreachable: {type(exc).__name__}"
            return 503, body
        cutoff = self.runtime.clock.now() - STUCK_AFTER
        with Session(self.runtime.engine) as session:
            stuck = session.exec(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status == "pending", OutboxMessage.created_at < cutoff)).one()
            failed = session.exec(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status == "failed")).one()
            pending = session.exec(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status == "pending")).one()
        body["outbox"] = {"pending": pending, "stuck_over_5m": stuck, "undeliverable": failed}
        if stuck:
            body["outbox"]["status"] = f"{stuck} message(s) undelivered for over 5 minutes"
            return 503, body
        body["outbox"]["status"] = "ok"
        return 200, body


def _json(start_response: Callable[..., Any], status: int, body: dict[str, Any]) -> list[bytes]:
    reasons = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
    data = json.dumps(body).encode()
    start_response(f"{status} {reasons.get(status, '')}", [("Content-Type", "application/json"),
                                                           ("Content-Length", str(len(data)))])
    return [data]


def create_app(env: Env, **runtime_kwargs: Any) -> WarroomApp:
    """Build (not start) the runtime and the HTTP app for these settings."""
    if not env.bot_token or not env.signing_secret:
        raise SystemExit("serve needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (see README)")
    client = make_client(env.bot_token, env.api_url)
    runtime = build_runtime(env, SlackTransport(client), **runtime_kwargs)
    identity = auth_test(client)
    return WarroomApp(runtime, build_bolt_app(runtime.dispatcher, client, env.signing_secret, identity))


_app: WarroomApp | None = None


def __getattr__(name: str) -> Any:
    """`bot.wsgi:app` for gunicorn: built and started from the environment on first access."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        from bot import logs

        env = Env.from_environ()
        logs.configure(env.log_level, env.secrets)
        _app = create_app(env)
        _app.runtime.start()
    return _app
