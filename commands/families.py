"""Importing this module registers every command family with commands/registry.py."""

from commands import (  # noqa: F401
    actions,
    checkpoint,
    contingency,
    decision,
    escalation,
    export,
    heartbeat,
    help,
    home,
    incident,
    incident_channels,
    launch,
    paging,
    pins,
    polls,
    probes,
    readiness,
    roles,
    rollback,
    statuspage,
)
