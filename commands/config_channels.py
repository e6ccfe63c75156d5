"""The `incident_channels:` section of the launch config: which severities get a channel of their own,
what its name starts with, and how long after the resolution it is archived."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import PlainValidator

from commands.config_file import must
from commands.config_types import SEVERITY_KEYS, Section, duration

# Slack's channel names: lowercase letters, digits, hyphens and underscores, at most 80 characters.
# The prefix leaves room for the number and the summary.
PREFIX = re.compile(r"^[a-z0-9_-]{1,20}\Z")

SeverityKey = Annotated[str, PlainValidator(must(lambda v: v in SEVERITY_KEYS,
                                                 "a severity: sev1, sev2, sev3 or sev4"))]
ArchiveAfter = Annotated[timedelta, PlainValidator(lambda v: duration(v, "24h"))]  # its example: 24h
Prefix = Annotated[str, PlainValidator(must(lambda v: isinstance(v, str) and PREFIX.match(v),
                                            "a channel-name prefix: at most 20 of a-z, 0-9, - and _"))]


class IncidentChannels(Section):
    """`incident_channels: {severities: [sev1], prefix: "inc-", archive_after: 24h}`."""

    severities: tuple[SeverityKey, ...] = ("sev1",)
    prefix: Prefix = "inc-"
    archive_after: ArchiveAfter = timedelta(hours=24)
