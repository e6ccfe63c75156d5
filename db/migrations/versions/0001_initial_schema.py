"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 23:48:12.436919
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "launch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("war_room", sa.String(length=40), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("t0", db.types.UTCDateTime(), nullable=True),
        sa.Column("started_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("started_by", sa.String(), nullable=True),
        sa.Column("heartbeat_every_s", sa.Integer(), nullable=False),
        sa.Column("heartbeat_until", db.types.UTCDateTime(), nullable=True),
        sa.Column("heartbeat_paused", sa.Boolean(), nullable=False),
        sa.Column("incident_seq", sa.Integer(), nullable=False),
        sa.Column("rehearsal", sa.Boolean(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "messageref",
        sa.Column("ref", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("ts", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("ref"),
    )
    op.create_table(
        "seenrequest",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("seen_at", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "activity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("at", db.types.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.create_index("ix_activity_launch_at", ["launch_id", "at"], unique=False)

    op.create_table(
        "checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("choice", sa.String(length=20), nullable=True),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("decided_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("checkpoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkpoint_launch_id"), ["launch_id"], unique=False)

    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("impact", sa.String(), nullable=False),
        sa.Column("workaround", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=40), nullable=True),
        sa.Column("declared_by", sa.String(length=40), nullable=False),
        sa.Column("declared_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=40), nullable=True),
        sa.Column("acknowledged_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=40), nullable=True),
        sa.Column("resolved_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("resolution", sa.String(), nullable=False),
        sa.Column("last_update_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("next_update_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("launch_id", "number"),
    )
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_launch_id"), ["launch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_incident_status"), ["status"], unique=False)

    op.create_table(
        "outboxmessage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=True),
        sa.Column("thread_ref", sa.String(length=80), nullable=True),
        sa.Column("update_ref", sa.String(length=80), nullable=True),
        sa.Column("arms_timer_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("claimed_until", db.types.UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("sent_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("ts", sa.String(length=40), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_status_channel", ["status", "channel", "id"], unique=False)

    op.create_table(
        "poll",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("opened_by", sa.String(length=40), nullable=False),
        sa.Column("opened_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("closed_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("poll", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_poll_launch_id"), ["launch_id"], unique=False)

    op.create_table(
        "proberesult",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("probe", sa.String(length=100), nullable=False),
        sa.Column("checked_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("proberesult", schema=None) as batch_op:
        batch_op.create_index("ix_probe_launch_name_at", ["launch_id", "probe", "checked_at"], unique=False)

    op.create_table(
        "probestate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("probe", sa.String(length=100), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("alerting", sa.Boolean(), nullable=False),
        sa.Column("changed_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("launch_id", "probe"),
    )
    op.create_table(
        "roleassignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("assigned_by", sa.String(length=40), nullable=False),
        sa.Column("assigned_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("roleassignment", schema=None) as batch_op:
        batch_op.create_index("ix_role_launch_role", ["launch_id", "role", "id"], unique=False)

    op.create_table(
        "rollback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(length=40), nullable=False),
        sa.Column("requested_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("confirmed_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("webhook_status", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rollback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollback_launch_id"), ["launch_id"], unique=False)

    op.create_table(
        "timer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("due_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("delay_s", sa.Float(), nullable=True),
        sa.Column("done_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("timer", schema=None) as batch_op:
        batch_op.create_index("ix_timer_due", ["done_at", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_timer_launch_id"), ["launch_id"], unique=False)

    op.create_table(
        "auditevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("ts", db.types.UTCDateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("auditevent", schema=None) as batch_op:
        batch_op.create_index("ix_audit_launch_ts", ["launch_id", "ts", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_auditevent_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.ForeignKeyConstraint(
            ["launch_id"],
            ["launch.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decision_launch_id"), ["launch_id"], unique=False)

    op.create_table(
        "rollbackstep",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollback_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("done_by", sa.String(length=40), nullable=True),
        sa.Column("done_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollback_id"],
            ["rollback.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rollbackstep", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollbackstep_rollback_id"), ["rollback_id"], unique=False)

    op.create_table(
        "vote",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("poll_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("choice", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("cast_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["poll_id"],
            ["poll.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("poll_id", "role"),
    )
    with op.batch_alter_table("vote", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vote_poll_id"), ["poll_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("vote", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vote_poll_id"))

    op.drop_table("vote")
    with op.batch_alter_table("rollbackstep", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollbackstep_rollback_id"))

    op.drop_table("rollbackstep")
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_launch_id"))

    op.drop_table("decision")
    with op.batch_alter_table("auditevent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auditevent_incident_id"))
        batch_op.drop_index("ix_audit_launch_ts")

    op.drop_table("auditevent")
    with op.batch_alter_table("timer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timer_launch_id"))
        batch_op.drop_index("ix_timer_due")

    op.drop_table("timer")
    with op.batch_alter_table("rollback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollback_launch_id"))

    op.drop_table("rollback")
    with op.batch_alter_table("roleassignment", schema=None) as batch_op:
        batch_op.drop_index("ix_role_launch_role")

    op.drop_table("roleassignment")
    op.drop_table("probestate")
    with op.batch_alter_table("proberesult", schema=None) as batch_op:
        batch_op.drop_index("ix_probe_launch_name_at")

    op.drop_table("proberesult")
    with op.batch_alter_table("poll", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_poll_launch_id"))

    op.drop_table("poll")
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_channel")

    op.drop_table("outboxmessage")
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_status"))
        batch_op.drop_index(batch_op.f("ix_incident_launch_id"))

    op.drop_table("incident")
    with op.batch_alter_table("checkpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkpoint_launch_id"))

    op.drop_table("checkpoint")
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_launch_at")

    op.drop_table("activity")
    op.drop_table("seenrequest")
    op.drop_table("messageref")
    op.drop_table("launch")
