"""The launch's readiness gates (`R-<n>` or a config id such as `qa-evidence`) and follow-up action items
(`A-<n>`): who owns each, when it is due, its state, and who changed it when (the changes themselves
are AuditEvents, as everywhere)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models import _time


class ReadinessItem(SQLModel, table=True):
    """A gate before T0. `state`: pending, at_risk, blocked or ready. `owner`: a role name (its holder is
    looked up when someone is told) or a Slack user id. `due_label` (T-48h) is set when the due counts
    from T0, so it moves with T0; `due_at` is the due time now (None while T0 is unknown)."""

    __table_args__ = (UniqueConstraint("launch_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    key: str = Field(max_length=40)
    number: int | None = None  # R-<n>: added by /ready add
    text: str
    owner: str = Field(max_length=40)
    due_label: str | None = Field(default=None, max_length=20)
    due_at: datetime | None = _time()
    critical: bool = False
    state: str = Field(default="pending", max_length=16)
    note: str = ""  # the evidence (ready) or the reason (blocked, at risk)
    source: str = Field(default="command", max_length=10)
    created_by: str = Field(max_length=40)
    created_at: datetime | None = _time(nullable=False)
    changed_by: str | None = Field(default=None, max_length=40)
    changed_at: datetime | None = _time()
    ready_at: datetime | None = _time()
    overdue_at: datetime | None = _time()  # when the overdue message for the current due was queued


class ActionItem(SQLModel, table=True):
    """A follow-up with an owner and a due time (`state`: open or done), linked to INC-<n> when named."""

    __table_args__ = (UniqueConstraint("launch_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    number: int
    text: str
    owner: str = Field(max_length=40)
    due_label: str | None = Field(default=None, max_length=20)
    due_at: datetime | None = _time()
    incident_number: int | None = None
    state: str = Field(default="open", max_length=16)
    note: str = ""
    created_by: str = Field(max_length=40)
    created_at: datetime | None = _time(nullable=False)
    done_by: str | None = Field(default=None, max_length=40)
    done_at: datetime | None = _time()
