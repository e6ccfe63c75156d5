"""channel pacing shared by replicas: when each channel may next get a chat.postMessage

Revision ID: 0004_channel_pace
Revises: 0003_faults
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0004_channel_pace"
down_revision: str | None = "0003_faults"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channelpace",
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("not_before", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel"),
    )


def downgrade() -> None:
    op.drop_table("channelpace")
