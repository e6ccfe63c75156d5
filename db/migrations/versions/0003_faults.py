"""an index for an incident's timers: every declaration, acknowledgement and resolution looks
them up by (subject_id, kind); without it each lookup scanned every pending (or done) timer

Revision ID: 0003_faults
Revises: 0002_timers
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_faults"
down_revision: str | None = "0002_timers"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_timer_subject", "timer", ["subject_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_timer_subject", table_name="timer")
