"""Calls to outside services, at the edge: never inside a transaction, never in the 3 s ack.

`run_leased` is the one loop every outside call goes through (the rollback's flag webhook, PagerDuty,
Statuspage): each due Timer of a kind is claimed with a lease in one transaction (commands/leases.py),
the service is called with httpx outside any transaction, and the outcome is recorded (and posted) in a
second one. `request` is the one way of calling: timeouts, connection errors, 429 and 5xx are retried
within the call with a short backoff; a 4xx is not. Error texts name what failed, never a URL, a header
or a key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from sqlmodel import select

from bot.dispatch import Dispatcher
from commands.context import Context
from commands.leases import CallOutcome
from db.models import Timer
from db.session import reading

log = logging.getLogger("warroom.outside")
MAX_BACKOFF_S = 4.0
C = TypeVar("C")


def request(method: str, url: str, *, body: Any, headers: Mapping[str, str], timeout: float, retries: int,
            service: str, sleep: Callable[[float], None] = time.sleep,
            landed: Callable[[], CallOutcome | None] | None = None) -> CallOutcome:
    """One call, with `retries` more attempts on timeouts, connection errors, 429 and 5xx. `landed`, for a
    call that is not idempotent: asked before trying again after an attempt that may have taken effect
    (no answer, or a 5xx); what it finds is the outcome, and the call is not made again."""
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    answer: dict[str, Any] = {}
    attempt = 0
    with httpx.Client(timeout=timeout) as client:
        for attempt in range(1, retries + 2):
            try:
                response = client.request(method, url, json=body, headers=dict(headers))
            except httpx.TimeoutException as exc:
                status, error = None, f"timed out after {timeout:g}s"
                may_have_landed = not isinstance(exc, httpx.ConnectTimeout)
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: could not reach {service}"
                may_have_landed = not isinstance(exc, httpx.ConnectError)
            else:
                status, error, answer = response.status_code, None, _json_object(response)
                may_have_landed = status >= 500
                if 200 <= status < 300:
                    return CallOutcome(ok=True, status=status, attempts=attempt, body=answer,
                                       elapsed_ms=(time.monotonic() - started) * 1000)
                if status < 500 and status != 429:  # a 4xx will not get better by asking again
                    break
            log.warning("outside call attempt failed",
                        extra={"service": service, "attempt": attempt, "status": status, "error": error})
            if attempt <= retries:
                sleep(min(timeout, MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1)))
                if landed is not None and may_have_landed and (found := landed()) is not None:
                    return replace(found, attempts=attempt, elapsed_ms=(time.monotonic() - started) * 1000)
    retry = status is None or status >= 500 or status == 429
    return CallOutcome(ok=False, status=status, error=error, attempts=attempt, retry=retry, body=answer,
                       elapsed_ms=(time.monotonic() - started) * 1000)


def lease_for(timeout: timedelta | None, retries: int) -> timedelta:
    """Long enough for every attempt and pause of one call, plus a margin."""
    if timeout is None:
        return timedelta(seconds=30)
    per_attempt = timeout.total_seconds() + min(timeout.total_seconds(), MAX_BACKOFF_S)
    return timedelta(seconds=(retries + 1) * per_attempt + 30)


def without(outcome: CallOutcome, secret: str) -> CallOutcome:
    """The outcome with `secret` taken out of whatever the service echoed back."""
    if not secret or secret not in json.dumps(outcome.body) and secret not in (outcome.error or ""):
        return outcome
    body = json.loads(json.dumps(outcome.body).replace(secret, "[redacted]"))
    return replace(outcome, body=body, error=(outcome.error or "").replace(secret, "[redacted]") or None)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        parsed = response.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def run_leased(dispatcher: Dispatcher, kind: str, claim: Callable[[Context, int], C | None],
               call: Callable[[C], CallOutcome], record: Callable[[Context, C, CallOutcome], None]) -> int:
    """Claim, call and record every due Timer of `kind`, one at a time. Returns how many were called."""
    now = dispatcher.clock.now()
    with reading(dispatcher.engine) as session:  # a read: on SQLite no write lock for a poll that finds nothing
        due = session.exec(
            select(Timer.id, Timer.launch_id).where(Timer.kind == kind, Timer.done_at.is_(None),  # type: ignore[union-attr]
                                                    Timer.due_at <= now).order_by(Timer.id)  # type: ignore[operator]
        ).all()
    called = 0
    for timer_id, launch_id in due:
        try:
            taken = dispatcher.tick(lambda ctx, tid=timer_id: claim(ctx, tid), launch_id=launch_id)
            if taken is None:
                continue
            outcome = call(taken)
            called += outcome.attempts > 0  # 0: nothing to call (no service configured)
            dispatcher.tick(lambda ctx, t=taken, o=outcome: record(ctx, t, o), launch_id=launch_id)
        except Exception:
            log.exception("outside call failed", extra={"kind": kind, "timer_id": timer_id})
    return called
