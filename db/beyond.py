"""The records of the services beyond the war room (migration 0009_paging).

PagerDuty events need no table of their own: each is a `pagerduty_event` Timer (durable, claimed with a
lease, commands/leases.py) and its outcome an audit event on the incident's timeline.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from db.models import _time


class StatusPageUpdate(SQLModel, table=True):
    """One public status-page update: `pending` until confirmed or cancelled in Slack, then `confirmed`
    (queued), `sent` or `failed`. `page_incident_id` is Statuspage's id of the incident it created or updated."""

    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    status: str = Field(max_length=16)
    body: str
    state: str = Field(default="pending", max_length=12)
    requested_by: str = Field(max_length=40)
    requested_at: datetime | None = _time(nullable=False)
    decided_by: str | None = Field(default=None, max_length=40)
    decided_at: datetime | None = _time()
    sent_at: datetime | None = _time()
    page_incident_id: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, max_length=300)
