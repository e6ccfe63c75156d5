"""The launch config: one frozen settings object, whose sections are the sections of the YAML file.

Each section is a pydantic model, and the validated models are what the commands read (`config.probes`,
`config.severity("sev1").ack_within`, `config.war_room` for `channels.war_room`), so each setting is
described once: its type, default and check. commands/config_file.py reads the file within its bounds
and words each error with its key path.
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
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from commands import config_rollout
from commands.config_channels import IncidentChannels
from commands.config_file import ConfigError, bad, first_use, key_path_errors, must, read_yaml, shown
from commands.config_readiness import Readiness
from commands.defaults import (
    DEFAULT_ANNOUNCEMENT,
    DEFAULT_CONTINGENCIES,
    DEFAULT_GONOGO_CRITERIA,
    DEFAULT_ROLLBACK_STEPS,
    DEFAULT_RUN_OF_SHOW,
    DEFAULT_SEVERITIES,
    DEFAULT_YAML,
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


# The checks of single values, each raising bad(the user's message).

def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value).strip() == "":
        raise bad(f"{shown(value)} is not a non-empty string")
    return str(value)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta) and timedelta(0) < value <= MAX_DURATION:  # given in code: rehearsal, tests
        return value
    parsed = parse_duration(value) if isinstance(value, str) else None  # None past 30 days as well
    if parsed is None or parsed <= timedelta(0):
        raise bad(f"{shown(value)} is not a duration like 5m")
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
Duration = Annotated[timedelta, PlainValidator(_duration)]
AckWithin = Annotated[timedelta | str, PlainValidator(lambda v: v if v == NEXT_CHECKPOINT else _duration(v))]
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


# The sections of the file, which are the settings themselves.

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
    name: Annotated[Text, AfterValidator(lambda name: name[:200])] = "launch"
    timezone: Timezone = "UTC"  # before t0, which reads it
    t0: T0 | None = None
    announcement: Text = DEFAULT_ANNOUNCEMENT


class Channels(_Section):
    war_room: Channel = "C0WARROOM"
    broadcast: tuple[Channel, ...] = ()


class Severity(_Section):
    name: Annotated[Text, AfterValidator(lambda name: name[:40])]  # the key (sev1) when nothing names it
    ack_within: AckWithin | None = None  # a duration, next_checkpoint, or None: no ack clock
    escalate_to: tuple[Role, ...] = ()
    update_every: Duration = timedelta(minutes=30)
    _key: str = PrivateAttr("")  # set by Severities: not a key of the file

    @property
    def key(self) -> str:
        return self._key

    @property
    def level(self) -> int:
        return int(self._key[3])


class Severities(_Section):
    """The four severities, read like a mapping: `severities["sev1"]`, `.items()`, `.values()`."""

    sev1: Severity
    sev2: Severity
    sev3: Severity
    sev4: Severity

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # Replaces _Section's: each severity is the built-in one with the file's keys laid over it,
        # so `ack_within: null` there does clear the default clock.
        if not isinstance(data, Mapping | None):
            return data
        merged = {str(k): v for k, v in (data or {}).items()}
        for key in SEVERITY_KEYS:
            given = merged.get(key)
            if given is None or isinstance(given, Mapping):
                laid = merged[key] = {**DEFAULT_SEVERITIES[key], **(given or {})}
                if laid.get("name") is None:
                    laid["name"] = key
        return merged

    @model_validator(mode="after")
    def _key_each(self) -> Severities:
        for key in SEVERITY_KEYS:
            self[key]._key = key
        return self

    def __getitem__(self, key: str) -> Severity:
        if key not in SEVERITY_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def items(self) -> list[tuple[str, Severity]]:
        return [(key, self[key]) for key in SEVERITY_KEYS]

    def values(self) -> list[Severity]:
        return [self[key] for key in SEVERITY_KEYS]


class Heartbeat(_Section):
    every: Duration = timedelta(minutes=30)
    for_: Duration = Field(timedelta(hours=4), alias="for")


class Probe(_Section):
    name: Text
    url: Url
    threshold_ms: ThresholdMs | None = None
    every: Duration = timedelta(minutes=1)
    timeout: Duration = timedelta(seconds=5)
    metric: Metric = "latency"  # or engagement, when the probe's JSON supplies active sessions

    @field_validator("name")
    @classmethod
    def _one_probe_per_name(cls, name: str, info: ValidationInfo) -> str:
        return first_use(name, info, "probe_names", "probe")


class Mark(_Section):
    label: Label = Field(alias="at")
    text: Text

    @property
    def offset(self) -> timedelta:
        return offset_of(self.label) or timedelta(0)


def _in_order(marks: tuple[Mark, ...]) -> tuple[Mark, ...]:
    return tuple(sorted(marks, key=lambda mark: mark.offset))


class Webhook(_Section):
    url: Url
    method: Method = "POST"
    json_: JsonBody = Field(None, alias="json")
    headers: dict[Annotated[str, PlainValidator(str)], Annotated[str, PlainValidator(str)]] = {}
    timeout: Duration = timedelta(seconds=5)
    retries: Retries = 2

    @property
    def json(self) -> Any:  # the body to send (BaseModel.json is pydantic's, hence the field's name)
        return self.json_


class Rollback(_Section):
    webhook: Webhook | None = None
    steps: tuple[Text, ...] = DEFAULT_ROLLBACK_STEPS
    approvals: Approvals = 1

    @field_validator("steps", mode="before")
    @classmethod
    def _fits_one_message(cls, steps: Any) -> Any:
        if isinstance(steps, list | tuple) and len(steps) > MAX_ROLLBACK_STEPS:
            raise bad(f"has {len(steps)} steps; the checklist holds at most {MAX_ROLLBACK_STEPS} "
                       "(one Slack message, 50 blocks)")
        return steps


# metrics: and rollout: (commands/config_rollout.py), built on the pieces above
_metrics_and_rollout = config_rollout.sections()
Metrics, RolloutPlan = _metrics_and_rollout["Metrics"], _metrics_and_rollout["Rollout"]


class Gonogo(_Section):
    criteria: tuple[Text, ...] = DEFAULT_GONOGO_CRITERIA
    roles: Voters = ("commander", "eng_oncall", "exec")


class Signoff(_Section):
    roles: Voters = ("commander", "eng_oncall", "cx", "exec")


class Contingency(_Section):
    scenario: Text
    action: Text
    owner: Text = "commander"
    notes: Text = ""


class Limits(_Section):
    per_user_per_minute: Limit = 20  # commands and clicks of one user
    declarations_per_user_per_hour: Limit = 10


# the sections kept in modules of their own build on the types above
from commands.config_beyond import Paging, StatusPage  # noqa: E402


def _setting(path: str) -> Any:
    """The flat name the commands read a key of a section by: `channels.war_room` as config.war_room.

    Read-only: model_copy(update=) ignores it; copy the section instead (bot/rehearse.py does)."""
    section, key = path.split(".")
    return property(lambda config: getattr(getattr(config, section), key))


class Config(_Section):
    """The whole file, validated: what the commands read as ctx.config."""

    launch: Launch = Field(default_factory=Launch)
    channels: Channels = Field(default_factory=Channels)
    roles: dict[str, User | None] = {}
    severities: Severities = Field({}, validate_default=True)  # validated: the built-in four
    heartbeat: Heartbeat = Field(default_factory=Heartbeat)
    probes: tuple[Probe, ...] = ()
    run_of_show: Annotated[tuple[Mark, ...], AfterValidator(_in_order)] = tuple(
        Mark(at=at, text=text) for at, text in DEFAULT_RUN_OF_SHOW)
    rollback: Rollback = Field(default_factory=Rollback)
    gonogo: Gonogo = Field(default_factory=Gonogo)
    signoff: Signoff = Field(default_factory=Signoff)
    contingencies: tuple[Contingency, ...] = tuple(
        Contingency(scenario=s, action=a, owner=o, notes=n) for s, a, o, n in DEFAULT_CONTINGENCIES)
    admins: tuple[User, ...] = ()  # may take the commander seat while nobody holds it; nothing else
    limits: Limits = Field(default_factory=Limits)
    incident_channels: IncidentChannels | None = None  # commands/config_channels.py; absent: no channels
    readiness: Readiness = ()  # commands/config_readiness.py: gates before T0 (seeds 002, 004)
    readiness_remind_before: Duration = timedelta(hours=24)
    paging: Paging = Field(default_factory=Paging)
    status_page: StatusPage = Field(default_factory=StatusPage)
    metrics: Metrics = Field(default_factory=Metrics)  # type: ignore[valid-type]
    rollout: RolloutPlan = Field(default_factory=RolloutPlan)  # type: ignore[valid-type]

    launch_name = _setting("launch.name")
    timezone = _setting("launch.timezone")
    t0 = _setting("launch.t0")
    announcement = _setting("launch.announcement")
    war_room = _setting("channels.war_room")
    broadcast = _setting("channels.broadcast")
    heartbeat_every = _setting("heartbeat.every")
    heartbeat_for = _setting("heartbeat.for_")
    webhook = _setting("rollback.webhook")
    rollback_steps = _setting("rollback.steps")
    rollback_approvals = _setting("rollback.approvals")
    gonogo_criteria = _setting("gonogo.criteria")
    gonogo_roles = _setting("gonogo.roles")
    signoff_roles = _setting("signoff.roles")
    per_user_per_minute = _setting("limits.per_user_per_minute")
    declarations_per_user_per_hour = _setting("limits.declarations_per_user_per_hour")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.launch.timezone)

    def severity(self, key: str) -> Severity:
        return self.severities[key]

    @field_validator("roles", mode="before")
    @classmethod
    def _role_names_as_text(cls, roles: Any) -> Any:
        return {str(k): v for k, v in roles.items()} if isinstance(roles, Mapping) else roles


def load_config(path: str | None) -> Config:
    """The config at path (or the built-in defaults); raises ConfigError listing every problem."""
    return parse_config(DEFAULT_YAML if path is None else read_yaml(path))


def parse_config(raw: Any) -> Config:
    """The validated config; raises ConfigError with every problem, each prefixed by its key path."""
    roles = raw.get("roles") if isinstance(raw, Mapping) else None
    known = set(STANDARD_ROLES) | ({str(r) for r in roles} if isinstance(roles, Mapping) else set())
    try:
        return Config.model_validate(raw, context={"roles": known, "probe_names": set(),
                                                        "metric_names": config_rollout.metric_names(raw)})
    except ValidationError as exc:
        raise ConfigError(key_path_errors(exc, Config)) from None
