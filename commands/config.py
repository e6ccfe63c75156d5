"""The launch config: one frozen settings object, whose sections are the sections of the YAML file.

Each section is a pydantic model, and the validated models are what the commands read (`config.probes`,
`config.severity("sev1").ack_within`, `config.war_room` for `channels.war_room`), so each setting is
described once: its type, default and check. The kinds of value and the Section base are in
commands/config_types.py; commands/config_file.py reads the file within its bounds and words each error
with its key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from commands.config_beyond import Paging, StatusPage
from commands.config_channels import IncidentChannels
from commands.config_file import ConfigError, bad, first_use, key_path_errors, read_yaml
from commands.config_readiness import Readiness
from commands.config_rollout import Metrics, Rollout, metric_names
from commands.config_types import (
    SEVERITY_KEYS,
    STANDARD_ROLES,
    T0,
    AckWithin,
    Approvals,
    Channel,
    Duration,
    Label,
    Limit,
    Metric,
    Role,
    Section,
    Text,
    ThresholdMs,
    Timezone,
    Url,
    User,
    Voters,
    Webhook,
)
from commands.defaults import (
    DEFAULT_ANNOUNCEMENT,
    DEFAULT_CONTINGENCIES,
    DEFAULT_GONOGO_CRITERIA,
    DEFAULT_ROLLBACK_STEPS,
    DEFAULT_RUN_OF_SHOW,
    DEFAULT_SEVERITIES,
    DEFAULT_YAML,
)
from commands.parse import offset_of

MAX_ROLLBACK_STEPS = 48  # the checklist is a header block plus one block per step; Slack allows 50 blocks


# The sections of the file, which are the settings themselves.

class Launch(Section):
    name: Annotated[Text, AfterValidator(lambda name: name[:200])] = "launch"
    timezone: Timezone = "UTC"  # before t0, which reads it
    t0: T0 | None = None
    announcement: Text = DEFAULT_ANNOUNCEMENT


class Channels(Section):
    war_room: Channel = "C0WARROOM"
    broadcast: tuple[Channel, ...] = ()


class Severity(Section):
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


class Severities(Section):
    """The four severities, read like a mapping: `severities["sev1"]`, `.items()`, `.values()`."""

    sev1: Severity
    sev2: Severity
    sev3: Severity
    sev4: Severity

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # Replaces Section's: each severity is the built-in one with the file's keys laid over it,
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


class Heartbeat(Section):
    every: Duration = timedelta(minutes=30)
    for_: Duration = Field(timedelta(hours=4), alias="for")


class Probe(Section):
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


class Mark(Section):
    label: Label = Field(alias="at")
    text: Text

    @property
    def offset(self) -> timedelta:
        return offset_of(self.label) or timedelta(0)


def _in_order(marks: tuple[Mark, ...]) -> tuple[Mark, ...]:
    return tuple(sorted(marks, key=lambda mark: mark.offset))


class Rollback(Section):
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


class Gonogo(Section):
    criteria: tuple[Text, ...] = DEFAULT_GONOGO_CRITERIA
    roles: Voters = ("commander", "eng_oncall", "exec")


class Signoff(Section):
    roles: Voters = ("commander", "eng_oncall", "cx", "exec")


class Contingency(Section):
    scenario: Text
    action: Text
    owner: Text = "commander"
    notes: Text = ""


class Limits(Section):
    per_user_per_minute: Limit = 20  # commands and clicks of one user
    declarations_per_user_per_hour: Limit = 10


def _setting(path: str) -> Any:
    """The flat name the commands read a key of a section by: `channels.war_room` as config.war_room.

    Read-only: model_copy(update=) ignores it; copy the section instead (bot/rehearse.py does)."""
    section, key = path.split(".")
    return property(lambda config: getattr(getattr(config, section), key))


class Config(Section):
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
    metrics: Metrics = Field(default_factory=Metrics)  # commands/config_rollout.py
    rollout: Rollout = Field(default_factory=Rollout)

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
                                                        "metric_names": metric_names(raw)})
    except ValidationError as exc:
        raise ConfigError(key_path_errors(exc, Config)) from None
