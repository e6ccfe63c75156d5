"""readiness gates and follow-up action items (seeds 002, 004)

Revision ID: 0006_readiness
Revises: 0005_delivery
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0006_readiness"
down_revision: str | None = "0005_delivery"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "readinessitem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("due_label", sa.String(length=20), nullable=True),
        sa.Column("due_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("changed_by", sa.String(length=40), nullable=True),
        sa.Column("changed_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("ready_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("overdue_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["launch_id"], ["launch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("launch_id", "key"),
    )
    op.create_index(op.f("ix_readinessitem_launch_id"), "readinessitem", ["launch_id"], unique=False)
    op.create_table(
        "actionitem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("due_label", sa.String(length=20), nullable=True),
        sa.Column("due_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("incident_number", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("done_by", sa.String(length=40), nullable=True),
        sa.Column("done_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["launch_id"], ["launch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("launch_id", "number"),
    )
    op.create_index(op.f("ix_actionitem_launch_id"), "actionitem", ["launch_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_actionitem_launch_id"), table_name="actionitem")
    op.drop_table("actionitem")
    op.drop_index(op.f("ix_readinessitem_launch_id"), table_name="readinessitem")
    op.drop_table("readinessitem")
