"""The launch config (YAML) into one validated, frozen settings object.

commands/config_models.py gives the file's shape (pydantic models); this module reads the file within
its bounds (1 MiB, 50 YAML aliases) and turns the validated sections into the Config the commands use.
Every error names its key path, e.g. `severities.sev1.ack_within: '5 minutes' is not a duration like 5m`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError

from commands.config_models import (
    MAX_ROLLBACK_STEPS,
    SEVERITY_KEYS,
    STANDARD_ROLES,
    ConfigFile,
    key_path_errors,
)
from commands.defaults import (
    DEFAULT_ANNOUNCEMENT,
    DEFAULT_CONTINGENCIES,
    DEFAULT_GONOGO_CRITERIA,
    DEFAULT_ROLLBACK_STEPS,
    DEFAULT_RUN_OF_SHOW,
    DEFAULT_YAML,
    NEXT_CHECKPOINT,
)
from commands.parse import offset_of

__all__ = [
    "MAX_ROLLBACK_STEPS", "NEXT_CHECKPOINT", "SEVERITY_KEYS", "STANDARD_ROLES", "Config", "ConfigError", "Contingency", "Mark",
    "Probe", "Severity", "Webhook", "load_config", "offset_of", "parse_config",
]
MAX_FILE_BYTES = 1024 * 1024
MAX_ALIASES = 50  # `*name` references; a few dozen make a billion-laughs file expand to gigabytes
MAX_DEPTH = 64  # nested mappings and lists; a config needs a handful, and PyYAML recurses per level


class ConfigError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Severity:
    key: str
    name: str
    ack_within: timedelta | str | None  # a duration, NEXT_CHECKPOINT, or None (no clock)
    escalate_to: tuple[str, ...]
    update_every: timedelta

    @property
    def level(self) -> int:
        return int(self.key[3])


@dataclass(frozen=True)
class Probe:
    name: str
    url: str
    threshold_ms: float | None = None
    every: timedelta = timedelta(minutes=1)
    timeout: timedelta = timedelta(seconds=5)
    metric: str = "latency"  # "latency", or "engagement" when the probe's JSON supplies active sessions


@dataclass(frozen=True)
class Mark:
    label: str
    offset: timedelta
    text: str


@dataclass(frozen=True)
class Webhook:
    url: str
    method: str = "POST"
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: timedelta = timedelta(seconds=5)
    retries: int = 2


@dataclass(frozen=True)
class Contingency:
    scenario: str
    action: str
    owner: str
    notes: str = ""


@dataclass(frozen=True)
class Config:
    launch_name: str = "launch"
    t0: datetime | None = None
    timezone: str = "UTC"
    announcement: str = DEFAULT_ANNOUNCEMENT
    war_room: str = "C0WARROOM"
    broadcast: tuple[str, ...] = ()
    roles: Mapping[str, str | None] = field(default_factory=dict)
    severities: Mapping[str, Severity] = field(default_factory=dict)
    heartbeat_every: timedelta = timedelta(minutes=30)
    heartbeat_for: timedelta = timedelta(hours=4)
    probes: tuple[Probe, ...] = ()
    run_of_show: tuple[Mark, ...] = ()
    webhook: Webhook | None = None
    rollback_steps: tuple[str, ...] = DEFAULT_ROLLBACK_STEPS
    rollback_approvals: int = 1
    gonogo_criteria: tuple[str, ...] = DEFAULT_GONOGO_CRITERIA
    gonogo_roles: tuple[str, ...] = ("commander", "eng_oncall", "exec")
    signoff_roles: tuple[str, ...] = ("commander", "eng_oncall", "cx", "exec")
    contingencies: tuple[Contingency, ...] = ()
    admins: tuple[str, ...] = ()  # may take the commander seat while nobody holds it; nothing else
    per_user_per_minute: int = 20  # commands and clicks of one user
    declarations_per_user_per_hour: int = 10

    def severity(self, key: str) -> Severity:
        return self.severities[key]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_config(path: str | None) -> Config:
    """The config at path (or the built-in defaults); raises ConfigError listing every problem."""
    if path is None:
        return parse_config(DEFAULT_YAML)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)  # never more than the limit, whatever the file is
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"]) from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([f"{path}: is over 1 MiB (a config is at most 1 MiB)"])
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=_BoundedLoader)  # a SafeLoader, counting aliases
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: is not UTF-8 text"]) from exc
    except _OverLimit as exc:
        raise ConfigError([f"{path}: {exc}"]) from exc
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an integer of 5,000 digits
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from exc
    return parse_config(raw if raw is not None else {})


def parse_config(raw: Any) -> Config:
    try:
        file = ConfigFile.read(raw)
    except ValidationError as exc:
        raise ConfigError(key_path_errors(exc)) from None
    return _settings(file)


class _OverLimit(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops at the 51st alias or the 65th level while composing, before anything expands."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _OverLimit(f"has more than {MAX_ALIASES} YAML aliases (*name); the one at line {line} is over")
        if self.depth >= MAX_DEPTH:
            raise _OverLimit(f"is nested more than {MAX_DEPTH} levels deep (at line {line})")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _settings(file: ConfigFile) -> Config:
    """The validated file as the Config the commands read; the built-in defaults where it is silent."""
    launch, rollback, webhook = file.launch, file.rollback, file.rollback.webhook
    t0 = launch.t0
    if t0 is not None and t0.tzinfo is None:
        t0 = t0.replace(tzinfo=ZoneInfo(launch.timezone))
    severities = {key: getattr(file.severities, key) for key in SEVERITY_KEYS}
    run_of_show = (tuple(Mark(label, offset_of(label) or timedelta(0), text) for label, text in DEFAULT_RUN_OF_SHOW)
                   if file.run_of_show is None else
                   tuple(sorted((Mark(m.at, offset_of(m.at) or timedelta(0), m.text) for m in file.run_of_show),
                                key=lambda mark: mark.offset)))
    return Config(
        launch_name=launch.name[:200],
        t0=t0,
        timezone=launch.timezone,
        announcement=launch.announcement,
        war_room=file.channels.war_room,
        broadcast=file.channels.broadcast,
        roles=dict(file.roles),
        severities={key: Severity(key=key, name=(s.name or key)[:40], ack_within=s.ack_within,
                                  escalate_to=s.escalate_to, update_every=s.update_every)
                    for key, s in severities.items()},
        heartbeat_every=file.heartbeat.every,
        heartbeat_for=file.heartbeat.for_,
        probes=tuple(Probe(name=p.name, url=p.url, threshold_ms=p.threshold_ms, every=p.every,
                           timeout=p.timeout, metric=p.metric) for p in file.probes),
        run_of_show=run_of_show,
        webhook=None if webhook is None else Webhook(
            url=webhook.url, method=webhook.method, json=webhook.json_, headers=dict(webhook.headers),
            timeout=webhook.timeout, retries=webhook.retries),
        rollback_steps=rollback.steps,
        rollback_approvals=rollback.approvals,
        gonogo_criteria=file.gonogo.criteria,
        gonogo_roles=file.gonogo.roles,
        signoff_roles=file.signoff.roles,
        contingencies=(tuple(Contingency(*row) for row in DEFAULT_CONTINGENCIES) if file.contingencies is None
                       else tuple(Contingency(c.scenario, c.action, c.owner, c.notes) for c in file.contingencies)),
        admins=file.admins,
        per_user_per_minute=file.limits.per_user_per_minute,
        declarations_per_user_per_hour=file.limits.declarations_per_user_per_hour,
    )
