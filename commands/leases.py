"""Calls to outside services (a flag webhook, PagerDuty, Statuspage) as leased Timer rows.

A call is a Timer due now. The edge (bot/outside.py `run_leased`) claims it with a lease in one
transaction (`claim_due`: compare-and-set of due_at to the lease's end), makes the HTTP call outside any
transaction, and records the outcome in a second one (`finish_due`, or `retry_later` when the service
may answer later). A runner that dies mid-call lets the lease run out and the call is made again:
at least once, so every call carries an idempotency key (a header, PagerDuty's dedup_key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from commands.context import Context
from db.models import Timer


@dataclass(frozen=True)
class Lease:
    """A claimed call: what its timer held when this runner took it."""

    timer_id: int
    launch_id: int
    subject_id: int | None
    payload: dict[str, Any]
    lease_until: datetime
    claim: int  # how many times it has been claimed, this one included


@dataclass(frozen=True)
class CallOutcome:
    """What an outside service answered. `retry`: it may answer later (429, 5xx, no answer)."""

    ok: bool
    status: int | None = None
    error: str | None = None
    attempts: int = 1
    elapsed_ms: float = 0.0
    retry: bool = False
    body: dict[str, Any] = field(default_factory=dict)


def claim_due(ctx: Context, timer_id: int, kind: str, lease: timedelta, *, in_order: bool = False) -> Lease | None:
    """Take a due call for `lease`; None when another runner has it. With `in_order`, a call waits while an
    earlier call of its kind about the same subject is unfinished (a PagerDuty trigger before its acknowledge)."""
    if in_order:
        timer = ctx.session.get(Timer, timer_id)
        if timer is not None and ctx.session.exec(
                select(Timer.id).where(Timer.kind == kind, Timer.subject_id == timer.subject_id,
                                       Timer.done_at.is_(None), Timer.id < timer_id)  # type: ignore[union-attr,operator]
        ).first() is not None:
            return None
    lease_until = ctx.now + lease
    won = ctx.session.exec(  # type: ignore[call-overload]
        update(Timer).where(Timer.id == timer_id, Timer.kind == kind, Timer.done_at.is_(None),  # type: ignore[union-attr]
                            Timer.due_at <= ctx.now).values(due_at=lease_until)  # type: ignore[operator]
    ).rowcount
    if won != 1:
        return None
    timer = ctx.session.get_one(Timer, timer_id)
    ctx.session.refresh(timer)
    claims = int(timer.payload.get("claims", 0)) + 1
    timer.payload = {**timer.payload, "claims": claims}
    ctx.session.add(timer)
    return Lease(timer_id=timer_id, launch_id=timer.launch_id, subject_id=timer.subject_id, payload=timer.payload,
                 lease_until=lease_until, claim=claims)


def finish_due(ctx: Context, timer_id: int, outcome: CallOutcome) -> Timer | None:
    """Mark the call done with its outcome; None when a runner whose lease had expired finished it first."""
    timer = ctx.session.exec(select(Timer).where(Timer.id == timer_id).with_for_update(key_share=True)).one()
    if timer.done_at is not None:
        return None
    timer.done_at = ctx.now
    timer.payload = {**timer.payload, "ok": outcome.ok, "status": outcome.status, "error": outcome.error}
    ctx.session.add(timer)
    return timer


def retry_later(ctx: Context, timer_id: int, outcome: CallOutcome, after: timedelta) -> Timer | None:
    """The service may answer later: due again `after` from now. None when it was finished meanwhile."""
    timer = ctx.session.exec(select(Timer).where(Timer.id == timer_id).with_for_update(key_share=True)).one()
    if timer.done_at is not None:
        return None
    timer.due_at = ctx.now + after
    timer.payload = {**timer.payload, "status": outcome.status, "error": outcome.error}
    ctx.session.add(timer)
    return timer


def backoff(claim: int, *, first: timedelta = timedelta(seconds=30), most: timedelta = timedelta(minutes=5)) -> timedelta:
    """30 s, 1 m, 2 m, 4 m, then every 5 m."""
    return min(first * 2 ** (claim - 1), most)


def status_line(outcome: CallOutcome) -> str:
    """What a call's record keeps of its answer: `HTTP 200`, or `failed: HTTP 503` / `failed: timed out …`."""
    summary = f"HTTP {outcome.status}" if outcome.status is not None else (outcome.error or "no answer")
    return (summary if outcome.ok else f"failed: {summary}")[:200]
