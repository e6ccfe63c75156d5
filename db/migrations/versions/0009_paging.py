"""beyond the war room: the public status-page updates (PagerDuty events are Timer rows)

Revision ID: 0009_paging
Revises: 0008_home
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0009_paging"
down_revision: str | None = "0008_home"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "statuspageupdate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("requested_by", sa.String(length=40), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("page_incident_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["launch_id"], ["launch.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("statuspageupdate", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_statuspageupdate_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_statuspageupdate_launch_id"), ["launch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("statuspageupdate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statuspageupdate_launch_id"))
        batch_op.drop_index(batch_op.f("ix_statuspageupdate_incident_id"))
    op.drop_table("statuspageupdate")
