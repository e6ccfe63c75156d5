"""Templates own the words. The environment escapes every value for Slack mrkdwn once, for all.

`&`, `<` and `>` in any value become `&amp;`, `&lt;`, `&gt;` (nothing else: quotes
stay quotes), so no user text can ping `<!channel>` or link anywhere. Intended
markup (a mention of a known user id, a piece of what the user typed in backticks)
is built by the `mention` and `quoted` filters, which return it marked safe.

A post is `templates/<name>.j2` (and `.json.j2`), composed by commands/context.py `post()`.
An ephemeral reply is one macro of `templates/replies/<family>.j2`: `reply("incident.acknowledged",
incident=…)`; a reply as long as a page (a list, a timeline) keeps a file of its own (`render`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

import templates
from commands import parse  # a module, not its names: parse's errors are worded here (reply)
from commands.escape import quote, slack_escape

TEMPLATES = Path(templates.__file__).resolve().parent  # a package, so that a wheel ships it
TEXT_LIMIT = 3000  # Block Kit text object limit


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Markup):
        return str(value)
    return layout_safe(slack_escape(str(value)))


_QUOTE_LINE = re.compile(r"^([ \t]*)&gt;", re.MULTILINE)
_ENTITY_CUT = re.compile(r"&[a-z]{0,3}\Z")  # a clip that fell inside `&amp;`, `&lt;` or `&gt;`
FENCE = "```"


def layout_safe(text: str) -> str:
    """Escaped user text that cannot fake the message's layout: none of its lines starts a quote (a
    zero-width space before the `>`), and a code fence it opens is closed within it."""
    text = _QUOTE_LINE.sub("\\1\u200b&gt;", str(text))
    return text + FENCE if text.count(FENCE) % 2 else text


def _mention(user: str | None) -> Markup | str:
    if user and parse.USER_ID.match(user):
        return Markup(f"<@{user}>")
    return "nobody"


def _json(value: Any) -> Markup:
    """A JSON string literal of an escaped value (Markup passes through unescaped)."""
    if isinstance(value, Markup):
        return Markup(json.dumps(str(value), ensure_ascii=False))
    if isinstance(value, str):
        return Markup(json.dumps(slack_escape(value), ensure_ascii=False))
    return Markup(json.dumps(value, ensure_ascii=False))


def slack_time(value: datetime, tz: str, *, tokens: str = "{time}", fallback: str = "%H:%M %Z") -> Markup:
    """A Slack date token: each reader sees the time in their own zone; the fallback (what the shell
    prints, and clients that cannot localise) is in the launch's zone: `<!date^1760634000^{time}|10:00 PDT>`."""
    local = value.astimezone(ZoneInfo(tz)).strftime(fallback)
    return Markup(f"<!date^{int(value.timestamp())}^{tokens}|{local}>")


def _hhmm(value: datetime | str | None, tz: str = "UTC") -> Markup | str:
    if value is None:
        return "--:--"
    if isinstance(value, str):  # a time kept in an audit event's payload (ISO 8601)
        value = datetime.fromisoformat(value)
    return slack_time(value, tz)


def day_and_time(value: datetime | None, tz: str = "UTC") -> Markup | str:
    """`Thu 16 Oct 2025 10:00 PDT` in the fallback; the reader's own date and time in Slack."""
    if value is None:
        return "-"
    return slack_time(value, tz, tokens="{date_short_pretty} {time}", fallback="%a %d %b %Y %H:%M %Z")


def _duration(value: timedelta | float | None) -> str:
    if value is None:
        return "-"
    if not isinstance(value, timedelta):
        value = timedelta(seconds=value)
    return parse.format_duration(value)


def _truncate(value: Any, limit: int = 300) -> Markup:
    """One field of user text, escaped, clipped to `limit` characters as Slack counts them (after
    escaping), so that a long field never pushes the rest of its message (an id, a mention) out."""
    text = str(value) if isinstance(value, Markup) else slack_escape(str(value))
    if len(text) > limit:
        text = _ENTITY_CUT.sub("", text[: limit - 1]) + "…"
    return Markup(layout_safe(text))


def _quoted(value: Any) -> Markup:
    """What the user typed, in an error message: clipped, escaped once, in backticks (commands/escape.py)."""
    return Markup(layout_safe(quote(str(value))))


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
        auto_reload=False,  # templates ship with the code: no stat() of the file on every message
        cache_size=-1,
    )
    env.filters.update(mention=_mention, json=_json, hhmm=_hhmm, when=day_and_time, duration=_duration, clip=_truncate,
                       quoted=_quoted)
    return env


def render(name: str, **values: Any) -> str:
    """A text template -> mrkdwn, clipped to Slack's text limit."""
    return _limited(environment().get_template(name).render(**values))


def reply(name: str, **values: Any) -> str:
    """An ephemeral reply: `"incident.acknowledged"` is macro `acknowledged` of `replies/incident.j2`,
    called with the values by name (the same environment: every value escaped once)."""
    family, _, macro = name.partition(".")
    return _limited(getattr(environment().get_template(f"replies/{family}.j2").module, macro)(**values))


def _limited(text: str) -> str:
    text = text.strip()
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def render_blocks(name: str, **values: Any) -> list[dict[str, Any]]:
    """A Block Kit template (`*.json.j2`) -> list of blocks."""
    return json.loads(environment().get_template(name).render(**values))


def verbatim(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every mrkdwn text of the blocks `verbatim`: no bare URL or #name in user text is made a link by Slack."""
    for block in blocks:
        for obj in (block.get("text"), *block.get("fields", ()), *block.get("elements", ())):
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                obj["verbatim"] = True
    return blocks
