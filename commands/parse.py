"""Parsing shared by every command family: ids, users, durations, severities."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from commands.errors import CommandError
from commands.escape import quote

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_INCIDENT_ID = re.compile(r"^(?:INC-)?(\d{1,9})$", re.IGNORECASE)
_USER = re.compile(r"^(?:<@([UW][A-Z0-9]{1,20})(?:\|[^>]{0,80})?>|@?([UW][A-Z0-9]{1,20}))$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{1,20}$")

SEVERITY_WORDS = {
    "sev1": "sev1", "critical": "sev1",
    "sev2": "sev2", "high": "sev2",
    "sev3": "sev3", "medium": "sev3",
    "sev4": "sev4", "low": "sev4",
}


def parse_duration(text: str) -> timedelta | None:
    """`90s`, `5m`, `1h30m`, `4h` -> timedelta; None when it is not such a duration."""
    text = text.strip().lower()
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


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
        raise CommandError(f"{quote(token)} is not an incident id like INC-7.", usage)
    return int(match.group(1))


def parse_user(token: str, usage: str) -> str:
    match = _USER.match(token.strip())
    if not match:
        raise CommandError(f"{quote(token)} is not a Slack user like @alice.", usage)
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
