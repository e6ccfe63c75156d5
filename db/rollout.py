"""The rollout's records: metric readings, the phases entered, and the rollback triggers that fired.

Kept out of db/models.py (which imports this module at its end, so the tables are in the metadata
wherever the models are). Migration 0007_rollout.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


def _time(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class MetricReading(SQLModel, table=True):
    """One reading of one metric source: a number, or (ok false) a failure with its error, never both."""

    __table_args__ = (Index("ix_metricreading_launch_source_at", "launch_id", "source", "read_at"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id")
    source: str = Field(max_length=64)
    read_at: datetime | None = _time(nullable=False)
    ok: bool
    value: float | None = None
    error: str | None = Field(default=None, max_length=300)


class RolloutPhase(SQLModel, table=True):
    """A phase entered: the newest row of a launch is its current phase (it survives restarts).
    Each row is one phase change, so its id keys the webhook call (`Idempotency-Key`)."""

    __table_args__ = (UniqueConstraint("launch_id", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    position: int  # 0 for the first phase entered, then 1, 2, …: two replicas cannot both enter the next one
    phase: str = Field(max_length=40)
    percent: float
    entered_at: datetime | None = _time(nullable=False)
    entered_by: str = Field(max_length=40)
    webhook_status: str | None = Field(default=None, max_length=200)


class TriggerFiring(SQLModel, table=True):
    """A `rollback_when` trigger that fired, once per streak of readings holding its condition."""

    __table_args__ = (UniqueConstraint("launch_id", "trigger", "streak_from"),)
    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="launch.id", index=True)
    trigger: str = Field(max_length=120)
    streak_from: datetime | None = _time(nullable=False)
    fired_at: datetime | None = _time(nullable=False)
    value: float | None = None
    rollback_id: int | None = None
