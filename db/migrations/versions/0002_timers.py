"""probe results carry a measured value (an engagement probe's active sessions)

Revision ID: 0002_timers
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_timers"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proberesult", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proberesult", schema=None) as batch_op:
        batch_op.drop_column("value")
