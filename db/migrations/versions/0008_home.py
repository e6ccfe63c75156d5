"""App Home viewers: who opened the bot's home tab, and what their view last showed

Revision ID: 0008_home
Revises: 0007_rollout
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0008_home"
down_revision: str | None = "0007_rollout"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "homeviewer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("published_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["launch_id"], ["launch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("launch_id", "user_id"),
    )
    op.create_index(op.f("ix_homeviewer_opened_at"), "homeviewer", ["opened_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_homeviewer_opened_at"), table_name="homeviewer")
    op.drop_table("homeviewer")
