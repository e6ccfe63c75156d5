"""What a Slack request must look like before warroom acts on it, over HTTP and Socket Mode alike.

Bolt verifies the signature; then (a Bolt middleware, bot/slack_app.py) the body is rebuilt here with
only the fields warroom reads, each of the type it must have; anything else is answered 400 with a
sentence saying what was wrong. Bolt's own context extractors and listeners assume dicts where Slack
sends dicts, and its parser reads a slash command whose text contains the word "payload" as an empty
body (`reparse` takes it back).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

MAX_BODY = 1 << 20  # Slack's requests are a few kB
SLACK_ID = re.compile(r"^[A-Z0-9]{2,40}\Z")  # users, channels, teams: U0123ABC, C0123ABC, T0123ABC


class Rejected(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def parse(text: str, content_type: str) -> dict[str, Any]:
    """The body as Slack meant it: JSON (events), a form (slash commands) or a form's `payload` (clicks)."""
    if content_type == "application/json":
        return _dict(_json(text), "the JSON body")
    if content_type != "application/x-www-form-urlencoded":
        raise Rejected(400, f"unsupported content type {content_type[:60]!r}")
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in form:
        return _dict(_json(form["payload"]), "payload")
    return form


def request_key(body: dict[str, Any], signature: str | None) -> str | None:
    """The key under which a command or click is remembered (at most once, Dispatcher.run): Slack gives
    each invocation a fresh trigger_id, over HTTP and Socket Mode; without one, the signature. Events
    are deduplicated by their event id instead (bot/slack_app.py)."""
    if body.get("type") in ("event_callback", "url_verification", "app_rate_limited"):
        return None
    trigger = body.get("trigger_id")
    if trigger:
        return f"trigger:{trigger}"
    return f"sig:{signature}" if signature else None


def clean(body: dict[str, Any]) -> dict[str, Any]:
    kind = body.get("type")
    if kind is None and "command" in body:
        return _slash(body)
    if kind == "block_actions":
        return _block_actions(body)
    if kind in ("view_submission", "view_closed"):
        return _view(body)
    if kind == "message_action":
        return _message_action(body)
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
    if p.get("view") is not None:  # a button on a view (App Home): which kind of view
        view = _dict(p["view"], "view")
        body["view"] = {"id": _str(view, "id"), "type": _str(view, "type")}
    return body


def _message_action(p: dict[str, Any]) -> dict[str, Any]:
    """A message shortcut (`declare_incident`): the message it was used on, and where."""
    body = _interactive_base(p)
    body["callback_id"] = _str(p, "callback_id", required=True)
    for key in ("action_ts", "message_ts"):
        if p.get(key) is not None:
            body[key] = _str(p, key)
    channel = _dict(p.get("channel"), "channel")
    body["channel"] = {"id": _slack_id(channel, "id", required=True), "name": _str(channel, "name")}
    m = _dict(p.get("message"), "message")
    body["message"] = {"type": _str(m, "type"), "ts": _str(m, "ts", required=True), "text": _str(m, "text") or "",
                       "thread_ts": _str(m, "thread_ts"), "bot_id": _str(m, "bot_id")}
    if isinstance(m.get("user"), str):
        body["message"]["user"] = _slack_id(m, "user")
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
    for key in ("subtype", "text", "ts", "thread_ts", "bot_id", "event_ts", "channel_type", "tab"):
        if e.get(key) is not None:
            event[key] = _str(e, key)
    if isinstance(e.get("user"), str):
        event["user"] = _slack_id(e, "user")
    if isinstance(e.get("channel"), str):
        event["channel"] = _slack_id(e, "channel")
    if event["type"] == "reaction_added":  # a :pushpin: on a message (commands/pins.py)
        event["reaction"] = _str(e, "reaction", required=True)
        item = _dict(e.get("item"), "item")
        event["item"] = {"type": _str(item, "type"), "channel": _slack_id(item, "channel"), "ts": _str(item, "ts")}
        if isinstance(e.get("item_user"), str):
            event["item_user"] = _slack_id(e, "item_user")
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
