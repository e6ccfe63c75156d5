"""The `readiness:` section of the config (seeds 002, 004) and the due times it and the commands share.

A due is a run-of-show offset (`T-48h`, `T+2d`, `T0`), which moves when T0 moves, or an ISO time with an
offset. An action item's due may also be a span from now (`2d`, `4h`). Days are allowed here (`2d`,
`1d12h`), up to a year either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator

from commands.config_file import bad, shown
from commands.config_types import Section
from commands.parse import USER_ID, format_duration, parse_duration, parse_time

MAX_DUE = timedelta(days=366)
MAX_ITEM_TEXT = 500
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")
ITEM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}\Z")
NUMBERED_ID = re.compile(r"^[ra]-?\d+\Z", re.IGNORECASE)  # R-<n> and A-<n> are the bot's own ids
_SPAN = re.compile(r"^(?:(\d{1,3})d)?(.*)\Z", re.IGNORECASE)


def parse_span(text: str) -> timedelta | None:
    """`2d`, `1d12h`, `90m`, `4h` -> timedelta (positive, at most a year); None otherwise."""
    match = _SPAN.match(text.strip())
    if not match or not text.strip():
        return None
    days, rest = match.group(1), match.group(2)
    span = timedelta(days=int(days)) if days else timedelta(0)
    if rest:
        more = parse_duration(rest)
        if more is None:
            return None
        span += more
    return span if timedelta(0) < span <= MAX_DUE else None


def format_span(delta: timedelta) -> str:
    """The inverse of parse_span: 2d, 1d12h, 48h stays 2d."""
    days, rest = divmod(int(round(delta.total_seconds())), 86400)
    return (f"{days}d" if days else "") + (format_duration(timedelta(seconds=rest)) if rest or not days else "")


@dataclass(frozen=True)
class Due:
    """When something is due: an offset from T0 (`label` like T-48h) or a fixed time."""

    offset: timedelta | None = None
    at: datetime | None = None
    given: str | None = None  # the offset as written (T-48h stays T-48h, not T-2d)

    @property
    def label(self) -> str | None:
        if self.offset is None:
            return None
        if not self.offset:
            return "T0"
        return self.given or ("T-" if self.offset < timedelta(0) else "T+") + format_span(abs(self.offset))

    def when(self, t0: datetime | None) -> datetime | None:
        """The due time against T0 (None while an offset has no T0 to count from)."""
        if self.at is not None:
            return self.at
        return t0 + self.offset if t0 is not None and self.offset is not None else None


def parse_due(text: str, *, spans: bool = False, now: datetime | None = None) -> Due | None:
    """`T-48h`, `T+2d`, `T0`, an ISO time with an offset, and (with spans, from now) `2d`; None otherwise."""
    text = text.strip()
    if text.upper() == "T0":
        return Due(offset=timedelta(0))
    if len(text) > 2 and text[0] in "Tt" and text[1] in "+-":
        span = parse_span(text[2:])
        return None if span is None else Due(offset=-span if text[1] == "-" else span, given="T" + text[1:].lower())
    if spans and now is not None:
        span = parse_span(text)
        if span is not None:
            return Due(at=now + span)
    at = parse_time(text) if len(text) <= 60 else None
    return Due(at=at) if at is not None else None


def _due(value: Any) -> Due:
    parsed = parse_due(str(value)) if isinstance(value, str | datetime) else None
    if isinstance(value, datetime) and value.tzinfo is not None:
        parsed = Due(at=value)
    if parsed is None:
        raise bad(f"{shown(value)} is not a due time like T-48h, T+2d or 2025-10-14T18:00:00-04:00")
    return parsed


def _owner(value: Any) -> str:
    if not isinstance(value, str) or not (ROLE_NAME.match(value) or USER_ID.match(value)):
        raise bad(f"{shown(value)} is not a role name (like qa) or a Slack user id (like U0123ABC)")
    return value


def _item_id(value: Any) -> str:
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if text is None or not ITEM_ID.match(text) or NUMBERED_ID.match(text):
        raise bad(f"{shown(value)} is not an item id like qa-evidence (lowercase, digits, - or _; R-<n> is the bot's)")
    return text


def _item_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{shown(value)} is not a non-empty string")
    if len(value) > MAX_ITEM_TEXT:
        raise bad(f"is {len(value)} characters; keep it to {MAX_ITEM_TEXT}")
    return value.strip()


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad(f"{shown(value)} is not true or false")
    return value


DueTime = Annotated[Due, PlainValidator(_due)]
Owner = Annotated[str, PlainValidator(_owner)]
ItemId = Annotated[str, PlainValidator(_item_id)]
ItemText = Annotated[str, PlainValidator(_item_text)]
Flag = Annotated[bool, PlainValidator(_flag)]


class ReadinessGate(Section):
    """One item of `readiness:`: evidence to be delivered by its owner by its due time."""

    id: ItemId
    text: ItemText
    owner: Owner
    due: DueTime
    critical: Flag = False


def _unique_ids(gates: tuple[ReadinessGate, ...]) -> tuple[ReadinessGate, ...]:
    seen: set[str] = set()
    for gate in gates:
        if gate.id in seen:
            raise bad(f"the id {shown(gate.id)} is used by two items")
        seen.add(gate.id)
    return gates


Readiness = Annotated[tuple[ReadinessGate, ...], AfterValidator(_unique_ids)]
