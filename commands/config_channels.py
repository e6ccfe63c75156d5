"""The `incident_channels:` section of the launch config: which severities get a channel of their own,
what its name starts with, and how long after the resolution it is archived."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, model_validator

from commands.config_file import bad, must, shown
from commands.parse import MAX_DURATION, parse_duration

# Slack's channel names: lowercase letters, digits, hyphens and underscores, at most 80 characters.
# The prefix leaves room for the number and the summary.
PREFIX = re.compile(r"^[a-z0-9_-]{1,20}\Z")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta) and timedelta(0) < value <= MAX_DURATION:  # given in code: tests
        return value
    parsed = parse_duration(value) if isinstance(value, str) else None
    if parsed is None or parsed <= timedelta(0):
        raise bad(f"{shown(value)} is not a duration like 24h")
    return parsed


SeverityKey = Annotated[str, PlainValidator(must(lambda v: v in ("sev1", "sev2", "sev3", "sev4"),
                                                 "a severity: sev1, sev2, sev3 or sev4"))]
Prefix = Annotated[str, PlainValidator(must(lambda v: isinstance(v, str) and PREFIX.match(v),
                                            "a channel-name prefix: at most 20 of a-z, 0-9, - and _"))]


class IncidentChannels(BaseModel):
    """`incident_channels: {severities: [sev1], prefix: "inc-", archive_after: 24h}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severities: tuple[SeverityKey, ...] = ("sev1",)
    prefix: Prefix = "inc-"
    archive_after: Annotated[timedelta, PlainValidator(_duration)] = timedelta(hours=24)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {str(k): v for k, v in data.items() if v is not None}
        return data
