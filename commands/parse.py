"""Parsing shared by every command family: ids, users, durations, severities."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from commands import render  # a module, not its names: render formats with parse (USER_ID, durations)
from commands.errors import CommandError

# `\Z`, not `$`: `$` also matches before a trailing newline, so `U0ABC\n` would pass as an id.
_DURATION = re.compile(r"^(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,12})s)?\Z")
_INCIDENT_ID = re.compile(r"^(?:INC-)?(\d{1,9})\Z", re.IGNORECASE)
_USER = re.compile(r"^(?:<@([UW][A-Z0-9]{1,20})(?:\|[^>]{0,80})?>|@?([UW][A-Z0-9]{1,20}))\Z")
USER_ID = re.compile(r"^[UW][A-Z0-9]{1,20}\Z")
MAX_DURATION = timedelta(days=30)  # the longest duration a command or the config accepts

SEVERITY_WORDS = {
    "sev1": "sev1", "critical": "sev1",
    "sev2": "sev2", "high": "sev2",
    "sev3": "sev3", "medium": "sev3",
    "sev4": "sev4", "low": "sev4",
}


def parse_duration(text: str) -> timedelta | None:
    """`90s`, `5m`, `1h30m`, `4h` -> timedelta; None when it is not such a duration or is over 30 days."""
    text = text.strip().lower()
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds  # summed as ints: timedelta(hours=10**14) overflows
    return timedelta(seconds=total) if total <= MAX_DURATION.total_seconds() else None


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, rounded to seconds: 1h30m, 5m, 45s."""
    total = int(round(delta.total_seconds()))
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return sign + ("".join(parts) or "0s")


def parse_incident_id(token: str, usage: str) -> int:
    match = _INCIDENT_ID.match(token.strip())
    if not match:
        raise CommandError(render.reply("common.not_an_incident_id", token=token), usage)
    return int(match.group(1))


def parse_user(token: str, usage: str) -> str:
    match = _USER.match(token.strip())
    if not match:
        raise CommandError(render.reply("common.not_a_user", token=token), usage)
    return match.group(1) or match.group(2)


def parse_severity(token: str) -> str | None:
    return SEVERITY_WORDS.get(token.strip().lower())


def parse_time(text: str) -> datetime | None:
    """An ISO-8601 time with an offset (or Z); None when it is not one."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def offset_of(label: str) -> timedelta | None:
    """`T-24h` -> -24h, `T0` -> 0, `T+15m` -> +15m; None when it is not a mark."""
    label = label.strip()
    if label.upper() == "T0":
        return timedelta(0)
    if len(label) < 3 or label[0] not in "Tt" or label[1] not in "+-":
        return None
    delta = parse_duration(label[2:])
    if delta is None:
        return None
    return -delta if label[1] == "-" else delta
