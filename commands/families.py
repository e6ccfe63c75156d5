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
    incident,
    launch,
    polls,
    probes,
    readiness,
    roles,
    rollback,
)
