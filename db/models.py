"""The launch's records. Every time is aware UTC (see db.types.UTCDateTime).

The audit trail is `AuditEvent`: one row per thing that happened (an incident's
timeline is its events), so an export reads one table in time order.
Deadlines are `Timer` rows; messages to Slack are `OutboxMessage` rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


def _time(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Launch(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    war_room: str = Field(max_length=40)
    timezone: str = Field(default="UTC", max_length=64)
    t0: datetime | None = _time()
    started_at: datetime | None = _time()
    started_by: str | None = None
    heartbeat_every_s: int = 1800
    heartbeat_until: datetime | None = _time()
    heartbeat_paused: bool = False
    incident_seq: int = 0
    rehearsal: bool = False
    created_at: datetime | None = _time(nullable=False)


class RoleAssignment(SQLModel, table=True):
    """Append-only: the newest row for (launch, role) is who holds it now."""

    __table_args__ = (Index("ix_role_launch_role", "launch_id", "role", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id")
    role: str = Field(max_length=40)
    user_id: str | None = Field(default=None, max_length=40)
    assigned_by: str = Field(max_length=40)
    assigned_at: datetime | None = _time(nullable=False)


class Incident(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("launch_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    number: int
    severity: str = Field(max_length=8)
    summary: str
    impact: str = ""
    workaround: str = ""
    status: str = Field(default="open", max_length=16, index=True)
    owner: str | None = Field(default=None, max_length=40)
    declared_by: str = Field(max_length=40)
    declared_at: datetime | None = _time(nullable=False)
    acknowledged_by: str | None = Field(default=None, max_length=40)
    acknowledged_at: datetime | None = _time()
    resolved_by: str | None = Field(default=None, max_length=40)
    resolved_at: datetime | None = _time()
    resolution: str = ""
    last_update_at: datetime | None = _time()
    next_update_at: datetime | None = _time()
    escalation_level: int = 0
    escalations: int = 0
    source: str | None = Field(default=None, max_length=200)


class AuditEvent(SQLModel, table=True):
    __table_args__ = (Index("ix_audit_launch_ts", "launch_id", "ts", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int | None = Field(default=None, foreign_key="launch.id")
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    kind: str = Field(max_length=40)
    actor: str = Field(max_length=40)
    ts: datetime | None = _time(nullable=False)
    payload: dict[str, Any] = _json()


class Decision(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    kind: str = Field(default="decision", max_length=20)
    text: str
    actor: str = Field(max_length=40)
    incident_id: int | None = Field(default=None, foreign_key="incident.id")
    created_at: datetime | None = _time(nullable=False)
    payload: dict[str, Any] = _json()


class Poll(SQLModel, table=True):
    """A go/no-go poll or a sign-off round."""

    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    kind: str = Field(max_length=10)
    opened_by: str = Field(max_length=40)
    opened_at: datetime | None = _time(nullable=False)
    closed_at: datetime | None = _time()
    outcome: str | None = Field(default=None, max_length=20)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    criteria: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Vote(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("poll_id", "role"),)
    id: int | None = Field(default=None, primary_key=True)
    poll_id: int = Field(foreign_key="poll.id", index=True)
    role: str = Field(max_length=40)
    user_id: str = Field(max_length=40)
    choice: str = Field(max_length=20)
    reason: str = ""
    cast_at: datetime | None = _time(nullable=False)


class Rollback(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    reason: str
    requested_by: str = Field(max_length=40)
    requested_at: datetime | None = _time(nullable=False)
    status: str = Field(default="pending", max_length=16)
    approvals: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    confirmed_at: datetime | None = _time()
    webhook_status: str | None = Field(default=None, max_length=200)


class RollbackStep(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    rollback_id: int = Field(foreign_key="rollback.id", index=True)
    position: int
    text: str
    done_by: str | None = Field(default=None, max_length=40)
    done_at: datetime | None = _time()


class Checkpoint(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    note: str = ""
    created_by: str = Field(max_length=40)
    created_at: datetime | None = _time(nullable=False)
    choice: str | None = Field(default=None, max_length=20)
    decided_by: str | None = Field(default=None, max_length=40)
    decided_at: datetime | None = _time()


class ProbeResult(SQLModel, table=True):
    __table_args__ = (Index("ix_probe_launch_name_at", "launch_id", "probe", "checked_at"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id")
    probe: str = Field(max_length=100)
    checked_at: datetime | None = _time(nullable=False)
    ok: bool
    latency_ms: float | None = None
    status_code: int | None = None
    error: str | None = None
    value: float | None = None  # what an engagement probe measured (active sessions); migration 0002_timers


class ProbeState(SQLModel, table=True):
    """Alerting state of one probe: consecutive failures and whether the war room was told."""

    __table_args__ = (UniqueConstraint("launch_id", "probe"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id")
    probe: str = Field(max_length=100)
    consecutive_failures: int = 0
    alerting: bool = False
    changed_at: datetime | None = _time()


class Timer(SQLModel, table=True):
    """A deadline. Due when due_at <= now and done_at is null; claimed by setting done_at.

    A timer with due_at null is dormant: it is armed later (an escalation counts
    from when its ping was actually posted, so the outbox arms the next one).
    """

    __table_args__ = (Index("ix_timer_due", "done_at", "due_at"), Index("ix_timer_subject", "subject_id", "kind"))
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    kind: str = Field(max_length=20)
    subject_id: int | None = None
    due_at: datetime | None = _time()
    delay_s: float | None = None
    done_at: datetime | None = _time()
    payload: dict[str, Any] = _json()
    created_at: datetime | None = _time(nullable=False)


class OutboxMessage(SQLModel, table=True):
    """A message to Slack. `status`: pending, then sent or failed; `merged` (its text went out in the post
    of row `merged_into`, one of a thread's replies sent together), `superseded` (a newer update of the
    same message, row `merged_into`, was sent instead), or `withdrawn` (an escalation ping no longer due).
    `urgent` rows go before routine ones of their channel (bot/outbox_order.py)."""

    __table_args__ = (Index("ix_outbox_status_channel", "status", "channel", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int | None = Field(default=None, foreign_key="launch.id")
    kind: str = Field(max_length=40)
    channel: str = Field(max_length=40)
    method: str = Field(default="chat.postMessage", max_length=40)
    payload: dict[str, Any] = _json()
    ref: str | None = Field(default=None, max_length=80)
    thread_ref: str | None = Field(default=None, max_length=80)
    update_ref: str | None = Field(default=None, max_length=80)
    arms_timer_id: int | None = None
    urgent: bool = False  # migration 0005_delivery
    status: str = Field(default="pending", max_length=12)
    merged_into: int | None = None
    attempts: int = 0
    failures: int = 0  # transient failures (5xx, timeouts, connection errors) since Slack last answered it
    next_attempt_at: datetime | None = _time()
    claimed_until: datetime | None = _time()
    claimed_by: str | None = Field(default=None, max_length=80)
    uncertain: bool = False
    created_at: datetime | None = _time(nullable=False)
    sent_at: datetime | None = _time()
    ts: str | None = Field(default=None, max_length=40)
    error: str | None = None


class MessageRef(SQLModel, table=True):
    """Where a named message landed, for thread replies and updates."""

    ref: str = Field(primary_key=True, max_length=80)
    channel: str = Field(max_length=40)
    ts: str = Field(max_length=40)


class ChannelPace(SQLModel, table=True):
    """When a channel may next get a chat.postMessage, on real time, for every replica's outbox: Slack
    takes about one message a second per channel, counted across all senders. The row `chat.update`
    (no channel id has a dot) is the workspace's pace for updates: Tier 3, about 50 a minute.
    While a send is in flight its row holds the channel (bot/outbox.py `_take_turn`)."""

    channel: str = Field(primary_key=True, max_length=40)
    not_before: datetime | None = _time(nullable=False)


class SeenRequest(SQLModel, table=True):
    """Idempotency keys: Slack event ids and retried deliveries."""

    key: str = Field(primary_key=True, max_length=200)
    seen_at: datetime | None = _time(nullable=False)


class Activity(SQLModel, table=True):
    """Someone used the bot or wrote in the war room: operator engagement."""

    __table_args__ = (Index("ix_activity_launch_at", "launch_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id")
    user_id: str = Field(max_length=40)
    at: datetime | None = _time(nullable=False)
    source: str = Field(default="command", max_length=20)



class HomeViewer(SQLModel, table=True):
    """Someone who opened the bot's App Home: their view is published again while they are recent
    (commands/home.py). `published_hash` is the fingerprint of the state their last view showed."""

    __table_args__ = (UniqueConstraint("launch_id", "user_id"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id")
    user_id: str = Field(max_length=40)
    opened_at: datetime | None = _time(nullable=False, index=True)
    published_at: datetime | None = _time()
    published_hash: str | None = Field(default=None, max_length=64)
from db.rollout import MetricReading, RolloutPhase, TriggerFiring  # noqa: E402,F401  (the rollout's tables)
