"""An incident's own Slack channel (commands/incident_channels.py): its name, its id once Slack made it,
and where its set-up stands. One row per incident: a restart resumes the set-up, never a second channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel, select

from db.types import UTCDateTime


def _time() -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class IncidentChannel(SQLModel, table=True):
    """`status`: creating (conversations.create queued), open, failed (Slack refused; `error` says why),
    archived. `attempt`: how many names were tried (a taken name gets a suffix)."""

    __tablename__ = "incident_channel"
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    incident_id: int = Field(foreign_key="incident.id", unique=True)
    name: str = Field(max_length=80)
    channel_id: str | None = Field(default=None, max_length=40, index=True)
    status: str = Field(default="creating", max_length=12)
    attempt: int = 1
    error: str | None = Field(default=None, max_length=80)
    created_at: datetime | None = _time()
    archived_at: datetime | None = _time()


def room_of(session: Session, incident_id: int | None) -> IncidentChannel | None:
    """The incident's channel row, if it has (or is getting) one."""
    return session.exec(select(IncidentChannel).where(IncidentChannel.incident_id == incident_id)).first()
