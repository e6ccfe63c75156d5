"""The `metrics:` and `rollout:` sections of the config (INTERFACE.md, "Metrics and the phased rollout").

A metric source is a Prometheus instant query or a JSON document read at a dotted path. Gates and
rollback triggers are `<metric> <op> <number>` (`<`, `<=`, `>`, `>=`) over the sources' names: a name
no source has is an error at its key path (parse_config puts the file's source names in the context).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator, ValidationInfo, field_validator, model_validator

from commands.config_file import bad, first_use, must, shown
from commands.config_types import Duration, Section, Text, Url, Webhook, duration

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\Z")
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                   ">=": operator.ge}
MIN_EVERY = timedelta(seconds=5)
MAX_PHASES = 20
MAX_SOURCES = 20


def metric_names(raw: Any) -> set[str]:
    """The source names the file gives (before validation): what a gate or a trigger may name."""
    metrics = raw.get("metrics") if isinstance(raw, Mapping) else None
    sources = metrics.get("sources") if isinstance(metrics, Mapping) else None
    if not isinstance(sources, list | tuple):
        return set()
    return {str(s["name"]) for s in sources if isinstance(s, Mapping) and s.get("name") is not None}


class Condition:
    """`error_rate < 0.01`, parsed: the metric, the operator and the number."""

    def __init__(self, metric: str, op: str, number: float) -> None:
        self.metric, self.op, self.number = metric, op, number

    def holds(self, value: float) -> bool:
        return bool(OPERATORS[self.op](value, self.number))

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.number:g}"

    def __repr__(self) -> str:
        return f"Condition({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def _condition(value: Any, info: ValidationInfo) -> Condition:
    if isinstance(value, Condition):
        return value
    match = CONDITION.match(value) if isinstance(value, str) else None
    if match is None:
        raise bad(f"{shown(value)} is not a condition like 'error_rate < 0.01' (a metric, <, <=, > or >=, a number)")
    metric, op, number = match.group(1), match.group(2), float(match.group(3))
    if not math.isfinite(number):
        raise bad(f"{shown(value)} has a number that is not finite")
    known = info.context.get("metric_names") if info.context else None
    if known is not None and metric not in known:
        listed = ", ".join(sorted(known)) or "none are configured"
        raise bad(f"{shown(value)} names {shown(metric)}, which is not a source under metrics.sources ({listed})")
    return Condition(metric, op, number)


def _every(value: Any) -> timedelta:
    every = duration(value)
    if every < MIN_EVERY and not isinstance(value, timedelta):
        raise bad(f"{shown(value)} is shorter than {MIN_EVERY.total_seconds():g}s")
    return every


def _percent(value: Any) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 <= value <= 100:
        raise bad(f"{shown(value)} is not a percent from 0 to 100")
    return float(value)


ConditionText = Annotated[Condition, PlainValidator(_condition)]
Every = Annotated[timedelta, PlainValidator(_every)]
Percent = Annotated[float, PlainValidator(_percent)]
SourceName = Annotated[str, PlainValidator(must(lambda v: isinstance(v, str) and NAME.match(v),
                                                "a name of letters, digits and _ like error_rate"))]
JsonPath = Annotated[str, PlainValidator(must(lambda v: isinstance(v, str) and v.strip(".") != "" and
                                              all(part for part in v.split(".")), "a dotted path like latency.p95_ms"))]
Action = Annotated[str, PlainValidator(must(lambda v: v in ("propose", "rollback"), "propose or rollback"))]


class MetricSource(Section):
    name: SourceName
    prometheus: Url | None = None
    query: Text | None = None
    url: Url | None = None
    json_path: JsonPath | None = None
    timeout: Duration = timedelta(seconds=5)

    @field_validator("name")
    @classmethod
    def _one_source_per_name(cls, name: str, info: ValidationInfo) -> str:
        return first_use(name, info, "source_names", "source")

    @model_validator(mode="after")
    def _one_kind(self) -> MetricSource:
        if self.prometheus is not None and self.url is not None:
            raise bad("has both prometheus and url; a source is one or the other")
        if self.prometheus is not None and self.query is None:
            raise bad("a prometheus source needs its query")
        if self.url is not None and self.json_path is None:
            raise bad("a url source needs its json_path")
        if self.prometheus is None and self.url is None:
            raise bad("needs prometheus (with query) or url (with json_path)")
        return self

    @property
    def kind(self) -> str:
        return "prometheus" if self.prometheus is not None else "json"


class Metrics(Section):
    every: Every = timedelta(minutes=1)
    sources: Annotated[tuple[MetricSource, ...], AfterValidator(
        must(lambda s: len(s) <= MAX_SOURCES, f"a list of at most {MAX_SOURCES} sources"))] = ()


class Phase(Section):
    name: Annotated[Text, AfterValidator(lambda name: name[:40])]
    percent: Percent
    hold_for: Duration | None = None
    gates: tuple[ConditionText, ...] = ()


class Trigger(Section):
    when: ConditionText
    for_: Duration = Field(alias="for")
    action: Action = "propose"

    @property
    def key(self) -> str:
        """Names the trigger in the database (a firing is once per trigger and streak)."""
        return f"{self.when} for {int(self.for_.total_seconds())}s {self.action}"[:120]


class Rollout(Section):
    webhook: Webhook | None = None
    phases: Annotated[tuple[Phase, ...], AfterValidator(
        must(lambda p: len(p) <= MAX_PHASES, f"a list of at most {MAX_PHASES} phases"))] = ()
    rollback_when: tuple[Trigger, ...] = ()

    def phase(self, name: str | None) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def after(self, name: str | None) -> Phase | None:
        """The phase after `name` (None: the first)."""
        if name is None:
            return self.phases[0] if self.phases else None
        names = [p.name for p in self.phases]
        i = names.index(name) if name in names else len(names)
        return self.phases[i + 1] if i + 1 < len(self.phases) else None
