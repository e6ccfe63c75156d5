"""The config file's shape: one pydantic model per YAML section, with each key's type and default.

Every leaf check raises PydanticCustomError with the message the user reads; key_path_errors turns a
ValidationError into `severities.sev1.ack_within: '5 minutes' is not a duration like 5m` lines, so no
pydantic wording reaches the user. commands/config.py turns a valid ConfigFile into the Config.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from commands.defaults import (
    DEFAULT_ANNOUNCEMENT,
    DEFAULT_GONOGO_CRITERIA,
    DEFAULT_ROLLBACK_STEPS,
    DEFAULT_SEVERITIES,
    NEXT_CHECKPOINT,
)
from commands.parse import MAX_DURATION, USER_ID, offset_of, parse_duration, parse_time

SEVERITY_KEYS = ("sev1", "sev2", "sev3", "sev4")
STANDARD_ROLES = ("commander", "scribe", "eng_oncall", "devops", "cx", "exec")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}\Z")
HTTP_METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
MAX_ROLLBACK_STEPS = 48  # the checklist is a header block plus one block per step; Slack allows 50 blocks
MAX_WEBHOOK_JSON = 64 * 1024  # characters of the webhook's body once serialised
MAX_THRESHOLD_MS = MAX_DURATION.total_seconds() * 1000

# Values are shown in messages as repr() shows them, clipped: a value may be a 1 MiB string.
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlong, _repr.maxlevel = 100, 100, 40, 3
shown = _repr.repr


def _bad(message: str) -> PydanticCustomError:
    return PydanticCustomError("config", message)  # no context: braces in the message stay as they are


def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value).strip() == "":
        raise _bad(f"{shown(value)} is not a non-empty string")
    return str(value)


def _duration(value: Any) -> timedelta:
    parsed = parse_duration(value) if isinstance(value, str) else None  # None past 30 days as well
    if parsed is None or parsed <= timedelta(0):
        raise _bad(f"{shown(value)} is not a duration like 5m")
    return parsed


def _ack_within(value: Any) -> timedelta | str:
    return value if value == NEXT_CHECKPOINT else _duration(value)


def _channel(value: Any) -> str:
    if not isinstance(value, str) or not CHANNEL_ID.match(value):
        raise _bad(f"{shown(value)} is not a Slack channel id like C0123ABC")
    return value


def _user(value: Any) -> str:
    if not isinstance(value, str) or not USER_ID.match(value):
        raise _bad(f"{shown(value)} is not a Slack user id like U0123ABC")
    return value


def _known_role(value: Any, info: ValidationInfo) -> str:
    known = info.context["roles"] if info.context else STANDARD_ROLES
    if not isinstance(value, str) or value not in known:
        raise _bad(f"{shown(value)} is not a role under roles:")
    return value


def _timezone(value: Any) -> str:
    name = _text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _bad(f"{shown(name)} is not a time zone like America/Los_Angeles") from None
    return name


def _t0(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else parse_time(str(value))  # naive: in launch.timezone
    if parsed is None:
        raise _bad(f"{shown(value)} is not an ISO time with an offset like 2025-10-16T10:00:00-07:00")
    return parsed


def _url(value: Any) -> str:
    url = _text(value)
    if not url.startswith(("http://", "https://")):
        raise _bad(f"{shown(url)} is not an http(s) URL")
    return url


def _threshold_ms(value: Any) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
        raise _bad(f"{shown(value)} is not a positive number of milliseconds")
    if value > MAX_THRESHOLD_MS:
        raise _bad(f"{shown(value)} is more than 30 days in milliseconds")
    return value


def _metric(value: Any) -> str:
    if value not in ("latency", "engagement"):
        raise _bad(f"{shown(value)} is not latency or engagement")
    return value


def _method(value: Any) -> str:
    method = _text(value).upper()
    if method not in HTTP_METHODS:
        raise _bad(f"{shown(method)} is not an HTTP method")
    return method


def _retries(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
        raise _bad(f"{shown(value)} is not a whole number from 0 to 10")
    return value


def _approvals(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value not in (1, 2):
        raise _bad(f"{shown(value)} is not 1 or 2")
    return value


def _limit(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000:
        raise _bad(f"{shown(value)} is not a whole number from 1 to 10000")
    return value


def _mark(value: Any) -> str:
    label = _text(value)
    if offset_of(label) is None:
        raise _bad(f"{shown(label)} is not a mark like T-24h, T0 or T+15m")
    return label


def _json_body(value: Any) -> Any:
    # Encoded piece by piece, stopping at the limit: YAML aliases can make a small file a huge body.
    size = 0
    try:
        for chunk in json.JSONEncoder(allow_nan=False).iterencode(value):
            size += len(chunk)
            if size > MAX_WEBHOOK_JSON:
                break
    except RecursionError:
        raise _bad("is nested too deeply to send as JSON") from None
    except (TypeError, ValueError) as exc:
        raise _bad(f"cannot be sent as JSON ({exc})") from None
    if size > MAX_WEBHOOK_JSON:
        raise _bad("is over 64 KiB as JSON")
    return value


def _someone_votes(roles: tuple[str, ...]) -> tuple[str, ...]:
    if not roles:
        raise _bad("needs at least one role")
    return roles


Text = Annotated[str, PlainValidator(_text)]
Duration = Annotated[timedelta, PlainValidator(_duration)]
Channel = Annotated[str, PlainValidator(_channel)]
Url = Annotated[str, PlainValidator(_url)]
Voters = Annotated[tuple[Text, ...], AfterValidator(_someone_votes)]


class _Section(BaseModel):
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


class Launch(_Section):
    name: Text = "launch"
    timezone: Annotated[str, PlainValidator(_timezone)] = "UTC"
    t0: Annotated[datetime, PlainValidator(_t0)] | None = None
    announcement: Text = DEFAULT_ANNOUNCEMENT


class Channels(_Section):
    war_room: Channel = "C0WARROOM"
    broadcast: tuple[Channel, ...] = ()


class SeverityFile(_Section):
    name: Text | None = None  # None: the key (sev1) names it
    ack_within: Annotated[timedelta | str, PlainValidator(_ack_within)] | None = None  # None: no ack clock
    escalate_to: tuple[Annotated[str, PlainValidator(_known_role)], ...] = ()
    update_every: Duration = timedelta(minutes=30)


class Severities(_Section):
    sev1: SeverityFile
    sev2: SeverityFile
    sev3: SeverityFile
    sev4: SeverityFile

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # Replaces _Section's: each severity is the built-in one with the file's keys laid over it,
        # so `ack_within: null` there does clear the default clock.
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            return data
        merged = {str(k): v for k, v in data.items()}
        for key in SEVERITY_KEYS:
            given = merged.get(key)
            if given is None or isinstance(given, Mapping):
                merged[key] = {**DEFAULT_SEVERITIES[key], **(given or {})}
        return merged


class Heartbeat(_Section):
    every: Duration = timedelta(minutes=30)
    for_: Duration = Field(timedelta(hours=4), alias="for")


class ProbeFile(_Section):
    name: Text
    url: Url
    threshold_ms: Annotated[float, PlainValidator(_threshold_ms)] | None = None
    every: Duration = timedelta(minutes=1)
    timeout: Duration = timedelta(seconds=5)
    metric: Annotated[str, PlainValidator(_metric)] = "latency"

    @field_validator("name")
    @classmethod
    def _one_probe_per_name(cls, name: str, info: ValidationInfo) -> str:
        # the names seen so far in this file: ConfigFile.read gives each validation a fresh set
        seen = info.context.setdefault("probe_names", set()) if info.context is not None else set()
        if name in seen:
            raise _bad(f"{shown(name)} is used by another probe")
        seen.add(name)
        return name


class MarkFile(_Section):
    at: Annotated[str, PlainValidator(_mark)]
    text: Text


class WebhookFile(_Section):
    url: Url
    method: Annotated[str, PlainValidator(_method)] = "POST"
    json_: Annotated[Any, PlainValidator(_json_body)] = Field(None, alias="json")
    headers: dict[Annotated[str, PlainValidator(str)], Annotated[str, PlainValidator(str)]] = {}
    timeout: Duration = timedelta(seconds=5)
    retries: Annotated[int, PlainValidator(_retries)] = 2


class Rollback(_Section):
    webhook: WebhookFile | None = None
    steps: tuple[Text, ...] = DEFAULT_ROLLBACK_STEPS
    approvals: Annotated[int, PlainValidator(_approvals)] = 1

    @field_validator("steps", mode="before")
    @classmethod
    def _fits_one_message(cls, steps: Any) -> Any:
        if isinstance(steps, list | tuple) and len(steps) > MAX_ROLLBACK_STEPS:
            raise _bad(f"has {len(steps)} steps; the checklist holds at most {MAX_ROLLBACK_STEPS} "
                       "(one Slack message, 50 blocks)")
        return steps


class Gonogo(_Section):
    criteria: tuple[Text, ...] = DEFAULT_GONOGO_CRITERIA
    roles: Voters = ("commander", "eng_oncall", "exec")


class Signoff(_Section):
    roles: Voters = ("commander", "eng_oncall", "cx", "exec")


class ContingencyFile(_Section):
    scenario: Text
    action: Text
    owner: Text = "commander"
    notes: Text = ""


class Limits(_Section):
    per_user_per_minute: Annotated[int, PlainValidator(_limit)] = 20
    declarations_per_user_per_hour: Annotated[int, PlainValidator(_limit)] = 10


class ConfigFile(_Section):
    launch: Launch = Field(default_factory=Launch)
    channels: Channels = Field(default_factory=Channels)
    roles: dict[str, Annotated[str, PlainValidator(_user)] | None] = {}
    severities: Severities = Field({}, validate_default=True)  # validated: the built-in four
    heartbeat: Heartbeat = Field(default_factory=Heartbeat)
    probes: tuple[ProbeFile, ...] = ()
    run_of_show: tuple[MarkFile, ...] | None = None  # None: the built-in run-of-show
    rollback: Rollback = Field(default_factory=Rollback)
    gonogo: Gonogo = Field(default_factory=Gonogo)
    signoff: Signoff = Field(default_factory=Signoff)
    contingencies: tuple[ContingencyFile, ...] | None = None  # None: the built-in contingencies
    admins: tuple[Annotated[str, PlainValidator(_user)], ...] = ()  # may take the commander seat while empty
    limits: Limits = Field(default_factory=Limits)

    @field_validator("roles", mode="before")
    @classmethod
    def _role_names_as_text(cls, roles: Any) -> Any:
        return {str(k): v for k, v in roles.items()} if isinstance(roles, Mapping) else roles

    @classmethod
    def read(cls, raw: Any) -> ConfigFile:
        """The validated file; raises ValidationError (see key_path_errors)."""
        roles = raw.get("roles") if isinstance(raw, Mapping) else None
        known = set(STANDARD_ROLES) | ({str(r) for r in roles} if isinstance(roles, Mapping) else set())
        return cls.model_validate(raw, context={"roles": known, "probe_names": set()})


def key_path_errors(exc: ValidationError) -> list[str]:
    """Each error as `key.path[0].key: message`, in the order pydantic found them."""
    return [f"{_key_path(e['loc'])}: {_message(e)}" for e in exc.errors(include_url=False)]


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path or "(top level)"


def _message(error: ErrorDetails) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "config":
        return error["msg"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return f"unknown key (expected one of {', '.join(_keys_at(error['loc'][:-1]))})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{shown(value)} is not a mapping"
    if kind in ("list_type", "tuple_type"):
        return f"{shown(value)} is not a list"
    return f"{shown(value)} is not valid here"  # every leaf has its own message; this is a safety net


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys of the section at loc (list indices skipped), for the unknown-key message."""
    section: type[BaseModel] = ConfigFile
    for part in loc:
        if isinstance(part, str):
            field = next(f for name, f in section.model_fields.items() if (f.alias or name) == part)
            section = _section_in(field.annotation) or section
    return sorted(f.alias or name for name, f in section.model_fields.items())


def _section_in(annotation: Any) -> type[BaseModel] | None:
    """The section model inside an annotation such as `ProbeFile`, `tuple[ProbeFile, ...]` or `X | None`."""
    if get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((s for s in map(_section_in, get_args(annotation)) if s is not None), None)
