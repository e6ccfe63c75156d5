"""Importing this module registers every command family with commands/registry.py."""

from commands import (  # noqa: F401
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
    roles,
    rollback,
    rollout,
)
