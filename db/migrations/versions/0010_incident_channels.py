"""incident channels: an incident's own Slack channel and where its set-up stands

Revision ID: 0010_incident_channels
Revises: 0009_paging
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0010_incident_channels"
down_revision: str | None = "0009_paging"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("channel_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=80), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("archived_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["launch_id"], ["launch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id"),
    )
    with op.batch_alter_table("incident_channel", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_channel_launch_id"), ["launch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_incident_channel_channel_id"), ["channel_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incident_channel", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_channel_channel_id"))
        batch_op.drop_index(batch_op.f("ix_incident_channel_launch_id"))
    op.drop_table("incident_channel")
