"""the phased rollout: metric readings, phases entered, rollback triggers fired

Revision ID: 0007_rollout
Revises: 0006_readiness
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0007_rollout"
down_revision: str | None = "0006_readiness"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metricreading",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("read_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["launch_id"], ["launch.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_metricreading_launch_source_at", "metricreading", ["launch_id", "source", "read_at"])
    op.create_table(
        "rolloutphase",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=40), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("entered_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("entered_by", sa.String(length=40), nullable=False),
        sa.Column("webhook_status", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["launch_id"], ["launch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("launch_id", "position"),
    )
    op.create_index(op.f("ix_rolloutphase_launch_id"), "rolloutphase", ["launch_id"])
    op.create_table(
        "triggerfiring",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=120), nullable=False),
        sa.Column("streak_from", db.types.UTCDateTime(), nullable=False),
        sa.Column("fired_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("rollback_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["launch_id"], ["launch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("launch_id", "trigger", "streak_from"),
    )
    op.create_index(op.f("ix_triggerfiring_launch_id"), "triggerfiring", ["launch_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_triggerfiring_launch_id"), table_name="triggerfiring")
    op.drop_table("triggerfiring")
    op.drop_index(op.f("ix_rolloutphase_launch_id"), table_name="rolloutphase")
    op.drop_table("rolloutphase")
    op.drop_index("ix_metricreading_launch_source_at", table_name="metricreading")
    op.drop_table("metricreading")
