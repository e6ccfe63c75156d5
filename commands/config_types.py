"""The building blocks of the launch config: the checks of single values, the kinds of value the file
holds (Text, Duration, Url, Role, ...), and Section, the base of every section model.

Every config module (commands/config.py and its config_*.py sections) builds on these, so each kind of
value is checked once. Each check raises bad(message) (commands/config_file.py): the user reads that
message after the key path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    model_validator,
)

from commands.config_file import bad, must, shown
from commands.defaults import NEXT_CHECKPOINT
from commands.parse import MAX_DURATION, USER_ID, offset_of, parse_duration, parse_time

SEVERITY_KEYS = ("sev1", "sev2", "sev3", "sev4")
STANDARD_ROLES = ("commander", "scribe", "eng_oncall", "devops", "cx", "exec")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}\Z")
HTTP_METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
MAX_WEBHOOK_JSON = 64 * 1024  # characters of the webhook's body once serialised
MAX_THRESHOLD_MS = MAX_DURATION.total_seconds() * 1000


# The checks of single values, each raising bad(the user's message).

def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value).strip() == "":
        raise bad(f"{shown(value)} is not a non-empty string")
    return str(value)


def duration(value: Any, example: str = "5m") -> timedelta:
    """value as a positive span of at most 30 days, else `<value> is not a duration like <example>`."""
    if isinstance(value, timedelta) and timedelta(0) < value <= MAX_DURATION:  # given in code: rehearsal, tests
        return value
    parsed = parse_duration(value) if isinstance(value, str) else None  # None past 30 days as well
    if parsed is None or parsed <= timedelta(0):
        raise bad(f"{shown(value)} is not a duration like {example}")
    return parsed


def _known_role(value: Any, info: ValidationInfo) -> str:
    known = info.context["roles"] if info.context else STANDARD_ROLES
    if not isinstance(value, str) or value not in known:
        raise bad(f"{shown(value)} is not a role under roles:")
    return value


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise bad(f"{shown(name)} is not a time zone like America/Los_Angeles") from None
    return name


def _t0(value: Any, info: ValidationInfo) -> datetime:
    parsed = value if isinstance(value, datetime) else parse_time(str(value))
    if parsed is None:
        raise bad(f"{shown(value)} is not an ISO time with an offset like 2025-10-16T10:00:00-07:00")
    if parsed.tzinfo is None:  # a time without a zone is in the launch's (validated before t0)
        parsed = parsed.replace(tzinfo=ZoneInfo(info.data.get("timezone", "UTC")))
    return parsed


def _threshold_ms(value: Any) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
        raise bad(f"{shown(value)} is not a positive number of milliseconds")
    if value > MAX_THRESHOLD_MS:
        raise bad(f"{shown(value)} is more than 30 days in milliseconds")
    return value


def _json_body(value: Any) -> Any:
    # Encoded piece by piece, stopping at the limit: YAML aliases can make a small file a huge body.
    size = 0
    try:
        for chunk in json.JSONEncoder(allow_nan=False).iterencode(value):
            size += len(chunk)
            if size > MAX_WEBHOOK_JSON:
                break
    except RecursionError:
        raise bad("is nested too deeply to send as JSON") from None
    except (TypeError, ValueError) as exc:
        raise bad(f"cannot be sent as JSON ({exc})") from None
    if size > MAX_WEBHOOK_JSON:
        raise bad("is over 64 KiB as JSON")
    return value


def _someone_votes(roles: tuple[str, ...]) -> tuple[str, ...]:
    if not roles:
        raise bad("needs at least one role")
    return roles


# The kinds of value in the file (`type(v) is int`: a bool is not a number here).
Text = Annotated[str, PlainValidator(_text)]
Duration = Annotated[timedelta, PlainValidator(duration)]
AckWithin = Annotated[timedelta | str, PlainValidator(lambda v: v if v == NEXT_CHECKPOINT else duration(v))]
Timezone = Annotated[Text, AfterValidator(_zone)]
T0 = Annotated[datetime, PlainValidator(_t0)]
Url = Annotated[Text, AfterValidator(must(lambda url: url.startswith(("http://", "https://")),
                                           "an http(s) URL"))]
Channel = Annotated[str, PlainValidator(must(lambda v: isinstance(v, str) and CHANNEL_ID.match(v),
                                              "a Slack channel id like C0123ABC"))]
User = Annotated[str, PlainValidator(must(lambda v: isinstance(v, str) and USER_ID.match(v),
                                           "a Slack user id like U0123ABC"))]
Role = Annotated[str, PlainValidator(_known_role)]
Voters = Annotated[tuple[Text, ...], AfterValidator(_someone_votes)]
Label = Annotated[Text, AfterValidator(must(lambda label: offset_of(label) is not None,
                                             "a mark like T-24h, T0 or T+15m"))]
Metric = Annotated[str, PlainValidator(must(lambda v: v in ("latency", "engagement"),
                                             "latency or engagement"))]
ThresholdMs = Annotated[float, PlainValidator(_threshold_ms)]
Method = Annotated[Text, AfterValidator(str.upper),
                   AfterValidator(must(lambda method: method in HTTP_METHODS, "an HTTP method"))]
JsonBody = Annotated[Any, PlainValidator(_json_body)]
Retries = Annotated[int, PlainValidator(must(lambda v: type(v) is int and 0 <= v <= 10,
                                              "a whole number from 0 to 10"))]
Approvals = Annotated[int, PlainValidator(must(lambda v: type(v) is int and v in (1, 2), "1 or 2"))]
Limit = Annotated[int, PlainValidator(must(lambda v: type(v) is int and 1 <= v <= 10_000,
                                            "a whole number from 1 to 10000"))]


class Section(BaseModel):
    """A mapping in the file: unknown keys are errors, and a key set to null means the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, Mapping):  # keys as text, so a key path never mistakes `1:` for a list index
            return {str(k): v for k, v in data.items() if v is not None}
        return data


class Webhook(Section):
    """An outside call the config describes (`rollback.webhook`, `rollout.webhook`)."""

    url: Url
    method: Method = "POST"
    json_: JsonBody = Field(None, alias="json")
    headers: dict[Annotated[str, PlainValidator(str)], Annotated[str, PlainValidator(str)]] = {}
    timeout: Duration = timedelta(seconds=5)
    retries: Retries = 2

    @property
    def json(self) -> Any:  # the body to send (BaseModel.json is pydantic's, hence the field's name)
        return self.json_
