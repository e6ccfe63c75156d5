"""The launch config (YAML) into one validated settings object.

Every error names its key path, e.g.
`severities.sev1.ack_within: '5 minutes' is not a duration like 5m`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

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
from commands.parse import USER_ID, parse_duration, parse_time

SEVERITY_KEYS = ("sev1", "sev2", "sev3", "sev4")
STANDARD_ROLES = ("commander", "scribe", "eng_oncall", "devops", "cx", "exec")
CHANNEL_ID = r"^[CGD][A-Z0-9]{2,20}$"
# the checklist is one block per step after its heading, and a rehearsal adds its marker: Slack takes 50
MAX_ROLLBACK_STEPS = 48

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
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from exc
    return parse_config(raw if raw is not None else {})


def parse_config(raw: Any) -> Config:
    v = _Validator()
    cfg = v.config(raw)
    if v.errors:
        raise ConfigError(v.errors)
    assert cfg is not None
    return cfg


class _Validator:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, msg: str) -> None:
        self.errors.append(f"{path}: {msg}")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.err(path, f"{value!r} is not a mapping")
            return {}
        return value

    def seq(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, f"{value!r} is not a list")
            return []
        return value

    def text(self, value: Any, path: str, default: str = "", *, required: bool = False) -> str:
        if value is None:
            if required:
                self.err(path, "is required")
            return default
        if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value).strip() == "":
            self.err(path, f"{value!r} is not a non-empty string")
            return default
        return str(value)

    def duration(self, value: Any, path: str, default: timedelta | None) -> timedelta | None:
        if value is None:
            return default
        parsed = parse_duration(str(value)) if isinstance(value, str) else None
        if parsed is None or parsed.total_seconds() <= 0:
            self.err(path, f"{value!r} is not a duration like 5m")
            return default
        return parsed

    def unknown(self, m: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in m:
            if key not in allowed:
                self.err(f"{path}.{key}" if path else str(key), f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def config(self, raw: Any) -> Config | None:
        top = self.mapping(raw, "(top level)")
        self.unknown(top, {"launch", "channels", "roles", "severities", "heartbeat", "probes", "run_of_show",
                           "rollback", "gonogo", "signoff", "contingencies"}, "")
        launch = self.mapping(top.get("launch"), "launch")
        self.unknown(launch, {"name", "t0", "timezone", "announcement"}, "launch")
        tz = self.text(launch.get("timezone"), "launch.timezone", "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            self.err("launch.timezone", f"{tz!r} is not a time zone like America/Los_Angeles")
            tz = "UTC"
        t0 = launch.get("t0")
        if isinstance(t0, datetime):
            t0 = t0 if t0.tzinfo else t0.replace(tzinfo=ZoneInfo(tz))
        elif t0 is not None:
            parsed = parse_time(str(t0))
            if parsed is None:
                self.err("launch.t0", f"{t0!r} is not an ISO time with an offset like 2025-10-16T10:00:00-07:00")
            t0 = parsed
        channels = self.mapping(top.get("channels"), "channels")
        self.unknown(channels, {"war_room", "broadcast"}, "channels")
        war_room = self.channel(channels.get("war_room", "C0WARROOM"), "channels.war_room")
        broadcast = tuple(self.channel(c, f"channels.broadcast[{i}]")
                          for i, c in enumerate(self.seq(channels.get("broadcast"), "channels.broadcast")))
        roles: dict[str, str | None] = {}
        for role, user in self.mapping(top.get("roles"), "roles").items():
            if user is not None and (not isinstance(user, str) or not USER_ID.match(user)):
                self.err(f"roles.{role}", f"{user!r} is not a Slack user id like U0123ABC")
                continue
            roles[str(role)] = user
        return Config(
            launch_name=self.text(launch.get("name"), "launch.name", "launch")[:200],
            t0=t0 if isinstance(t0, datetime) else None,
            timezone=tz,
            announcement=self.text(launch.get("announcement"), "launch.announcement", DEFAULT_ANNOUNCEMENT),
            war_room=war_room,
            broadcast=broadcast,
            roles=roles,
            severities=self.severities(top.get("severities"), set(roles) | set(STANDARD_ROLES)),
            **self.heartbeat(top.get("heartbeat")),
            probes=self.probes(top.get("probes")),
            run_of_show=self.run_of_show(top.get("run_of_show")),
            **self.rollback(top.get("rollback")),
            **self.polls(top.get("gonogo"), top.get("signoff")),
            contingencies=self.contingencies(top.get("contingencies")),
        )

    def channel(self, value: Any, path: str) -> str:
        import re

        if not isinstance(value, str) or not re.match(CHANNEL_ID, value):
            self.err(path, f"{value!r} is not a Slack channel id like C0123ABC")
            return "C0INVALID"
        return value

    def severities(self, raw: Any, known_roles: set[str]) -> dict[str, Severity]:
        given = self.mapping(raw, "severities")
        self.unknown(given, set(SEVERITY_KEYS), "severities")
        out: dict[str, Severity] = {}
        for key in SEVERITY_KEYS:
            base = dict(DEFAULT_SEVERITIES[key])
            path = f"severities.{key}"
            override = self.mapping(given.get(key), path)
            self.unknown(override, {"name", "ack_within", "escalate_to", "update_every"}, path)
            base.update(override)
            ack_raw = base.get("ack_within")
            ack: timedelta | str | None
            if ack_raw == NEXT_CHECKPOINT or ack_raw is None:
                ack = ack_raw
            else:
                ack = self.duration(ack_raw, f"{path}.ack_within", None)
            chain = []
            for i, role in enumerate(self.seq(base.get("escalate_to"), f"{path}.escalate_to")):
                if not isinstance(role, str) or role not in known_roles:
                    self.err(f"{path}.escalate_to[{i}]", f"{role!r} is not a role under roles:")
                else:
                    chain.append(role)
            out[key] = Severity(
                key=key,
                name=self.text(base.get("name"), f"{path}.name", key)[:40],
                ack_within=ack,
                escalate_to=tuple(chain),
                update_every=self.duration(base.get("update_every"), f"{path}.update_every", timedelta(minutes=30))
                or timedelta(minutes=30),
            )
        return out

    def heartbeat(self, raw: Any) -> dict[str, Any]:
        hb = self.mapping(raw, "heartbeat")
        self.unknown(hb, {"every", "for"}, "heartbeat")
        return {
            "heartbeat_every": self.duration(hb.get("every"), "heartbeat.every", timedelta(minutes=30)),
            "heartbeat_for": self.duration(hb.get("for"), "heartbeat.for", timedelta(hours=4)),
        }

    def probes(self, raw: Any) -> tuple[Probe, ...]:
        out = []
        names: set[str] = set()
        for i, item in enumerate(self.seq(raw, "probes")):
            path = f"probes[{i}]"
            p = self.mapping(item, path)
            self.unknown(p, {"name", "url", "threshold_ms", "every", "timeout", "metric"}, path)
            name = self.text(p.get("name"), f"{path}.name", f"probe{i}", required=True)
            if name in names:
                self.err(f"{path}.name", f"{name!r} is used by another probe")
            names.add(name)
            url = self.text(p.get("url"), f"{path}.url", "", required=True)
            if url and not url.startswith(("http://", "https://")):
                self.err(f"{path}.url", f"{url!r} is not an http(s) URL")
            threshold = p.get("threshold_ms")
            if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold <= 0):
                self.err(f"{path}.threshold_ms", f"{threshold!r} is not a positive number of milliseconds")
                threshold = None
            metric = p.get("metric", "latency")
            if metric not in ("latency", "engagement"):
                self.err(f"{path}.metric", f"{metric!r} is not latency or engagement")
                metric = "latency"
            out.append(Probe(
                name=name, url=url, threshold_ms=threshold, metric=metric,
                every=self.duration(p.get("every"), f"{path}.every", timedelta(minutes=1)) or timedelta(minutes=1),
                timeout=self.duration(p.get("timeout"), f"{path}.timeout", timedelta(seconds=5)) or timedelta(seconds=5),
            ))
        return tuple(out)

    def run_of_show(self, raw: Any) -> tuple[Mark, ...]:
        if raw is None:
            return tuple(Mark(label, offset_of(label) or timedelta(0), text) for label, text in DEFAULT_RUN_OF_SHOW)
        out = []
        for i, item in enumerate(self.seq(raw, "run_of_show")):
            path = f"run_of_show[{i}]"
            m = self.mapping(item, path)
            self.unknown(m, {"at", "text"}, path)
            at = self.text(m.get("at"), f"{path}.at", "T0", required=True)
            offset = offset_of(at)
            if offset is None:
                self.err(f"{path}.at", f"{at!r} is not a mark like T-24h, T0 or T+15m")
                continue
            out.append(Mark(at, offset, self.text(m.get("text"), f"{path}.text", "", required=True)))
        return tuple(sorted(out, key=lambda mark: mark.offset))

    def rollback(self, raw: Any) -> dict[str, Any]:
        rb = self.mapping(raw, "rollback")
        self.unknown(rb, {"webhook", "steps", "approvals"}, "rollback")
        webhook = None
        if rb.get("webhook") is not None:
            wh = self.mapping(rb.get("webhook"), "rollback.webhook")
            self.unknown(wh, {"url", "method", "json", "headers", "timeout", "retries"}, "rollback.webhook")
            url = self.text(wh.get("url"), "rollback.webhook.url", "", required=True)
            if url and not url.startswith(("http://", "https://")):
                self.err("rollback.webhook.url", f"{url!r} is not an http(s) URL")
            method = self.text(wh.get("method"), "rollback.webhook.method", "POST").upper()
            if method not in ("POST", "PUT", "PATCH", "GET", "DELETE"):
                self.err("rollback.webhook.method", f"{method!r} is not an HTTP method")
            retries = wh.get("retries", 2)
            if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
                self.err("rollback.webhook.retries", f"{retries!r} is not a whole number from 0 to 10")
                retries = 2
            webhook = Webhook(
                url=url, method=method, json=wh.get("json"),
                headers={str(k): str(v) for k, v in self.mapping(wh.get("headers"), "rollback.webhook.headers").items()},
                timeout=self.duration(wh.get("timeout"), "rollback.webhook.timeout", timedelta(seconds=5)) or timedelta(seconds=5),
                retries=retries,
            )
        steps = rb.get("steps")
        step_list = tuple(self.text(s, f"rollback.steps[{i}]") for i, s in enumerate(self.seq(steps, "rollback.steps")))
        if len(step_list) > MAX_ROLLBACK_STEPS:
            self.err("rollback.steps", f"has {len(step_list)} steps; a Slack message shows at most {MAX_ROLLBACK_STEPS}")
        approvals = rb.get("approvals", 1)
        if not isinstance(approvals, int) or isinstance(approvals, bool) or approvals not in (1, 2):
            self.err("rollback.approvals", f"{approvals!r} is not 1 or 2")
            approvals = 1
        return {
            "webhook": webhook,
            "rollback_steps": step_list if steps is not None else DEFAULT_ROLLBACK_STEPS,
            "rollback_approvals": approvals,
        }

    def polls(self, gonogo_raw: Any, signoff_raw: Any) -> dict[str, Any]:
        gonogo = self.mapping(gonogo_raw, "gonogo")
        self.unknown(gonogo, {"criteria", "roles"}, "gonogo")
        signoff = self.mapping(signoff_raw, "signoff")
        self.unknown(signoff, {"roles"}, "signoff")
        out: dict[str, Any] = {}
        if gonogo.get("criteria") is not None:
            out["gonogo_criteria"] = tuple(self.text(c, f"gonogo.criteria[{i}]")
                                           for i, c in enumerate(self.seq(gonogo.get("criteria"), "gonogo.criteria")))
        for key, path, raw_roles in (("gonogo_roles", "gonogo.roles", gonogo.get("roles")),
                                      ("signoff_roles", "signoff.roles", signoff.get("roles"))):
            if raw_roles is not None:
                roles = tuple(self.text(r, f"{path}[{i}]") for i, r in enumerate(self.seq(raw_roles, path)))
                if not roles:
                    self.err(path, "needs at least one role")
                out[key] = roles
        return out

    def contingencies(self, raw: Any) -> tuple[Contingency, ...]:
        if raw is None:
            return tuple(Contingency(*row) for row in DEFAULT_CONTINGENCIES)
        out = []
        for i, item in enumerate(self.seq(raw, "contingencies")):
            path = f"contingencies[{i}]"
            c = self.mapping(item, path)
            self.unknown(c, {"scenario", "action", "owner", "notes"}, path)
            out.append(Contingency(
                scenario=self.text(c.get("scenario"), f"{path}.scenario", "", required=True),
                action=self.text(c.get("action"), f"{path}.action", "", required=True),
                owner=self.text(c.get("owner"), f"{path}.owner", "commander"),
                notes=self.text(c.get("notes"), f"{path}.notes", ""),
            ))
        return tuple(out)


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
