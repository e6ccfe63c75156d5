"""The door of `POST /slack/events`: what gets past it is signed, fresh, new and well-formed.

In order, before Bolt sees anything:
1. size: a body over 1 MiB is 413 (Slack's are a few kB);
2. signature: `v0=` HMAC-SHA256 over the raw bytes with the signing secret, timestamp within
   5 minutes of real time, else 401 (Bolt's own verifier is skipped for what we hand it);
3. shape: the body is parsed once, here, and rebuilt with only the fields warroom reads, each of
   the type it must have; anything else is 400 with a sentence saying what was wrong. (Bolt's
   own parser turns a slash command whose text contains the word "payload" into an empty body
   and raises on malformed JSON; its context extractors assume dicts where Slack sends dicts.)
4. replay: a slash command or interactive payload is new each time Slack sends one (a fresh
   trigger_id and timestamp), so the same signature seen twice is a replay: 401. The signature is
   stored in the command's transaction (Dispatcher.run, via REQUEST_KEY), so a replay check
   costs no extra write. Events are exempt: Slack retries them (X-Slack-Retry-Num) and the event
   id dedupes them (slack_app).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from contextvars import ContextVar
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import delete
from sqlalchemy.engine import Engine

from commands.clock import Clock
from db.models import SeenRequest
from db.session import transaction

log = logging.getLogger("warroom.guard")
MAX_BODY = 1 << 20
MAX_SKEW_S = 300
SIGNATURES_KEPT = timedelta(minutes=10)  # twice the timestamp window
EVENTS_KEPT = timedelta(hours=1)  # Slack's last retry comes about 5 minutes after the first try
PRUNE_EVERY_S = 60.0
SLACK_ID = re.compile(r"^[A-Z0-9]{2,40}$")  # users, channels, teams: U0123ABC, C0123ABC, T0123ABC


# the signature of the request being handled, for Dispatcher.run (set by bot/wsgi.py around Bolt)
REQUEST_KEY: ContextVar[str | None] = ContextVar("warroom_request_key", default=None)


class Replayed(Exception):
    """This signed request was handled before: 401, nothing done."""


class Rejected(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class Guard:
    def __init__(self, signing_secret: str, engine: Engine, clock: Clock) -> None:
        self.secret = signing_secret.encode()
        self.engine = engine
        self.clock = clock
        self._pruned_at = 0.0
        self._prune_lock = threading.Lock()

    def read(self, environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise Rejected(400, "Content-Length is not a number") from None
        if length > MAX_BODY:
            raise Rejected(413, "request body over 1 MiB")
        return environ["wsgi.input"].read(length) if length > 0 else b""

    def check(self, environ: dict[str, Any], raw: bytes) -> dict[str, Any]:
        """The request's body, rebuilt clean, or Rejected."""
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        self.verify(raw, timestamp, signature)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(400, "the body is not UTF-8") from None
        body = clean(parse(text, (environ.get("CONTENT_TYPE") or "").split(";")[0].strip()))
        self.prune()
        return body

    @staticmethod
    def replay_key(environ: dict[str, Any], body: dict[str, Any]) -> str | None:
        """The key under which this request is remembered (None for events: see the module doc).
        The dispatcher stores it in the command's transaction and raises Replayed if it is there."""
        if body.get("type") in ("event_callback", "url_verification", "app_rate_limited"):
            return None
        return f"sig:{environ.get('HTTP_X_SLACK_SIGNATURE', '')}"

    def verify(self, raw: bytes, timestamp: str, signature: str) -> None:
        if not timestamp or not signature:
            raise Rejected(401, "missing Slack signature headers")
        try:
            ts = int(timestamp)
        except ValueError:
            raise Rejected(401, "invalid request timestamp") from None
        if abs(time.time() - ts) > MAX_SKEW_S:
            raise Rejected(401, "stale request timestamp")
        expected = "v0=" + hmac.new(self.secret, b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise Rejected(401, "invalid request signature")

    def prune(self) -> None:
        now_s = time.monotonic()
        if now_s - self._pruned_at < PRUNE_EVERY_S or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._pruned_at = now_s
            now = self.clock.now()
            with transaction(self.engine) as session:
                session.exec(delete(SeenRequest).where(  # type: ignore[call-overload]
                    SeenRequest.key.startswith("sig:"), SeenRequest.seen_at < now - SIGNATURES_KEPT))  # type: ignore[attr-defined,operator]
                session.exec(delete(SeenRequest).where(SeenRequest.seen_at < now - EVENTS_KEPT))  # type: ignore[call-overload,operator]
        except Exception:
            log.exception("could not prune seen requests")
        finally:
            self._prune_lock.release()


# -- parsing and rebuilding ---------------------------------------------------------

def parse(text: str, content_type: str) -> dict[str, Any]:
    if content_type == "application/json":
        return _dict(_json(text), "the JSON body")
    if content_type != "application/x-www-form-urlencoded":
        raise Rejected(400, f"unsupported content type {content_type[:60]!r}")
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in form:
        return _dict(_json(form["payload"]), "payload")
    return form


def clean(body: dict[str, Any]) -> dict[str, Any]:
    kind = body.get("type")
    if kind is None and "command" in body:
        return _slash(body)
    if kind == "block_actions":
        return _block_actions(body)
    if kind in ("view_submission", "view_closed"):
        return _view(body)
    if kind == "event_callback":
        return _event(body)
    if kind == "url_verification":
        return {"type": kind, "challenge": _str(body, "challenge", required=True)}
    if isinstance(kind, str) and len(kind) <= 40:
        return {"type": kind}  # a kind warroom does not handle: Bolt answers 404
    raise Rejected(400, "not a Slack request: no command and no type")


SLASH_FIELDS = ("token", "team_id", "team_domain", "enterprise_id", "enterprise_name", "channel_id", "channel_name",
                "user_id", "user_name", "command", "text", "api_app_id", "is_enterprise_install", "response_url",
                "trigger_id")


def _slash(form: dict[str, Any]) -> dict[str, Any]:
    body = {k: form[k] for k in SLASH_FIELDS if k in form}
    if not str(body.get("command", "")).startswith("/"):
        raise Rejected(400, "command must start with /")
    if not body.get("user_id"):
        raise Rejected(400, "user_id missing: Slack always says who ran a command")
    _slack_id(body, "user_id", required=True)
    _slack_id(body, "channel_id")
    body.setdefault("text", "")
    return body


def _interactive_base(p: dict[str, Any]) -> dict[str, Any]:
    user = _dict(p.get("user"), "user")
    body: dict[str, Any] = {
        "type": p["type"],
        "user": {"id": _slack_id(user, "id", required=True), "username": _str(user, "username"),
                 "team_id": _str(user, "team_id")},
    }
    if p.get("team") is not None:
        body["team"] = {"id": _str(_dict(p["team"], "team"), "id"), "domain": _str(p["team"], "domain")}
    for key in ("api_app_id", "token", "trigger_id", "response_url"):
        if p.get(key) is not None:
            body[key] = _str(p, key)
    return body


def _block_actions(p: dict[str, Any]) -> dict[str, Any]:
    body = _interactive_base(p)
    actions = p.get("actions")
    if not isinstance(actions, list) or not actions:
        raise Rejected(400, "actions must be a non-empty list")
    body["actions"] = []
    for raw in actions[:25]:
        a = _dict(raw, "each action")
        action = {"action_id": _str(a, "action_id", required=True), "block_id": _str(a, "block_id"),
                  "type": _str(a, "type"), "value": _str(a, "value"), "action_ts": _str(a, "action_ts")}
        if a.get("selected_option") is not None:
            action["selected_option"] = {"value": _str(_dict(a["selected_option"], "selected_option"), "value")}
        body["actions"].append(action)
    if p.get("channel") is not None:
        channel = _dict(p["channel"], "channel")
        body["channel"] = {"id": _slack_id(channel, "id"), "name": _str(channel, "name")}
    if p.get("container") is not None:
        container = _dict(p["container"], "container")
        body["container"] = {"type": _str(container, "type"), "message_ts": _str(container, "message_ts"),
                             "channel_id": _slack_id(container, "channel_id")}
    return body


def _view(p: dict[str, Any]) -> dict[str, Any]:
    body = _interactive_base(p)
    v = _dict(p.get("view"), "view")
    view: dict[str, Any] = {k: _str(v, k) for k in ("id", "type", "private_metadata", "hash")}
    view["callback_id"] = _str(v, "callback_id", required=True)
    values: dict[str, Any] = {}
    state = _dict(v.get("state") if v.get("state") is not None else {}, "view.state")
    for block_id, actions in _dict(state.get("values") if state.get("values") is not None else {},
                                   "view.state.values").items():
        block: dict[str, Any] = {}
        for action_id, element in _dict(actions, "each state block").items():
            e = _dict(element, "each state element")
            item: dict[str, Any] = {"type": _str(e, "type") or "plain_text_input", "value": _str(e, "value")}
            if e.get("selected_option") is not None:
                item["selected_option"] = {"value": _str(_dict(e["selected_option"], "selected_option"), "value")}
            block[str(action_id)[:255]] = item
        values[str(block_id)[:255]] = block
    view["state"] = {"values": values}
    body["view"] = view
    return body


def _event(p: dict[str, Any]) -> dict[str, Any]:
    e = _dict(p.get("event"), "event")
    event = {"type": _str(e, "type", required=True)}
    for key in ("subtype", "text", "ts", "thread_ts", "bot_id", "event_ts", "channel_type"):
        if e.get(key) is not None:
            event[key] = _str(e, key)
    if isinstance(e.get("user"), str):
        event["user"] = _slack_id(e, "user")
    if isinstance(e.get("channel"), str):
        event["channel"] = _slack_id(e, "channel")
    body = {"type": "event_callback", "event_id": _str(p, "event_id", required=True), "event": event}
    for key in ("team_id", "api_app_id", "token", "enterprise_id"):
        if p.get(key) is not None:
            body[key] = _str(p, key)
    if isinstance(p.get("event_time"), int):
        body["event_time"] = p["event_time"]
    return body


def _slack_id(container: dict[str, Any], key: str, *, required: bool = False) -> Any:
    value = _str(container, key, required=required)
    if value is not None and not SLACK_ID.match(value):
        raise Rejected(400, f"{key} is not a Slack id")
    return value


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise Rejected(400, "malformed JSON") from None


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected(400, f"{what} must be an object")
    return value


def _str(container: dict[str, Any], key: str, *, required: bool = False) -> Any:
    value = container.get(key)
    if value is None:
        if required:
            raise Rejected(400, f"{key} missing")
        return None
    if not isinstance(value, str):
        raise Rejected(400, f"{key} must be a string")
    return value
