"""The HTTP app: `POST /slack/events` (commands, events, interactivity), `GET /healthz`, `GET /metrics`
and the board (`GET /board`, bot/board.py).

`app` is the same WSGI app for any WSGI server: `gunicorn bot.wsgi:app`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from slack_bolt import App, BoltRequest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func
from sqlmodel import select

from bot.board import Board
from bot.config import Env
from bot.payloads import MAX_BODY
from bot.runtime import Runtime, build_runtime
from bot.slack_app import auth_test, build_bolt_app
from bot.transport import SlackTransport, make_client
from db.models import OutboxMessage
from db.session import reading

STUCK_AFTER = timedelta(minutes=5)
log = logging.getLogger("warroom.http")


class WarroomApp:
    def __init__(self, runtime: Runtime, bolt: App, signing_secret: str) -> None:
        self.runtime = runtime
        self.bolt = bolt
        self.verifier = SignatureVerifier(signing_secret)
        self.board = Board(runtime.dispatcher, runtime.env.board_token)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            status, body = self.health()
            return _json(start_response, status, body)
        if path in ("/board", "/board.json") or path.startswith("/board/"):
            return self.board(environ, start_response)
        if path == "/metrics" and environ.get("REQUEST_METHOD") in ("GET", "HEAD") and self.runtime.own_metrics:
            body, content_type = self.runtime.own_metrics.exposition()  # bot/own_metrics.py
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body] if environ.get("REQUEST_METHOD") == "GET" else []
        if path == "/slack/events":
            if environ.get("REQUEST_METHOD") != "POST":
                return _json(start_response, 405, {"error": "POST only"})
            return self.slack_events(environ, start_response)
        return _json(start_response, 404, {"error": "not found"})

    def slack_events(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Bolt verifies the signature (401) and bot/slack_app.py checks the payload's shape (400);
        a body Bolt cannot even parse is 400 when signed, else 401; never a stack trace to the caller."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _json(start_response, 400, {"error": "Content-Length is not a number"})
        if length > MAX_BODY:  # refused before a byte of it is read
            return _json(start_response, 413, {"error": "request body over 1 MiB"})
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_") and isinstance(value, str)}
        headers["content-type"] = environ.get("CONTENT_TYPE") or ""
        if not headers.get("x-slack-request-timestamp", "0").isdigit():  # Bolt's verifier raises on one
            return _json(start_response, 401, {"error": "invalid request timestamp"})
        try:
            request = BoltRequest(body=raw.decode("utf-8"), query=environ.get("QUERY_STRING") or "", headers=headers)
        except (UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
            if not self.verifier.is_valid_request(raw, headers):
                return _json(start_response, 401, {"error": "invalid request signature"})
            return _json(start_response, 400, {"error": "malformed JSON"})
        try:
            response = self.bolt.dispatch(request)
        except Exception:
            log.exception("request failed")
            return _json(start_response, 500, {"error": "warroom hit an error; nothing was changed"})
        data = (response.body or "").encode()
        out = [(k, v) for k, values in response.headers.items() if k.lower() != "content-length" for v in values]
        start_response(f"{response.status} {_reason(response.status)}", [*out, ("Content-Length", str(len(data)))])
        return [data]

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 when the database answers and nothing has waited over 5 minutes to reach Slack; else 503
        and `problems` says which. Messages Slack refused for good (channel_not_found, …) are counted,
        reported in the war room and kept, but do not make the bot unhealthy."""
        body: dict[str, Any] = {"status": "ok", "problems": []}
        cutoff = self.runtime.clock.now() - STUCK_AFTER
        try:
            with reading(self.runtime.engine) as session:
                pending = session.exec(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.status == "pending")).one()
                stuck = session.exec(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.status == "pending", OutboxMessage.created_at < cutoff)).one()
                oldest = session.exec(select(func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.status == "pending")).one()
                failed = session.exec(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.status == "failed")).one()
                errors = session.exec(select(OutboxMessage.error).where(
                    OutboxMessage.status == "pending", OutboxMessage.created_at < cutoff,
                    OutboxMessage.error.is_not(None)).distinct().limit(5)).all()  # type: ignore[union-attr]
            body["db"] = "ok"
        except Exception as exc:  # the database did not answer (or has no schema): say so, never raise
            body.update(status="unavailable", db=f"unreachable: {type(exc).__name__}")
            body["problems"].append("database unreachable")
            return 503, body
        body["outbox"] = {"pending": pending, "stuck_over_5m": stuck, "undeliverable": failed,
                          "oldest_pending": oldest.isoformat() if oldest else None}
        if self.runtime.outbox.cannot_join:  # it posts there but cannot look its posts up: invite it
            body["outbox"]["must_be_invited_to"] = self.runtime.outbox.cannot_join
        if stuck:
            body["outbox"]["status"] = f"{stuck} message(s) undelivered for over 5 minutes"
            body["outbox"]["last_errors"] = [e for e in errors if e]
            body["status"] = "unavailable"
            body["problems"].append(body["outbox"]["status"])
            return 503, body
        body["outbox"]["status"] = "ok"
        return 200, body


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _json(start_response: Callable[..., Any], status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(f"{status} {_reason(status)}", [("Content-Type", "application/json"),
                                                   ("Content-Length", str(len(data)))])
    return [data]


def create_app(env: Env, **runtime_kwargs: Any) -> WarroomApp:
    """Build (not start) the runtime and the HTTP app for these settings."""
    if not env.bot_token or not env.signing_secret:
        raise SystemExit("serve needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (see README)")
    client = make_client(env.bot_token, env.api_url, sdk_retries=False)  # views.open: a trigger lives 3 s
    outbox_client = make_client(env.bot_token, env.api_url, timeout=env.slack_timeout, sdk_retries=False)
    runtime = build_runtime(env, SlackTransport(outbox_client), **runtime_kwargs)
    identity = auth_test(client)
    bolt = build_bolt_app(runtime.dispatcher, client, env.signing_secret, identity)
    return WarroomApp(runtime, bolt, env.signing_secret)


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
