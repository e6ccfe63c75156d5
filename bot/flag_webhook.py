"""The rollback's feature-flag webhook, called at the edge: never inside a transaction, never in the 3 s ack.

A confirmed rollback leaves a `rollback_webhook` Timer due now. `run_rollback_webhooks` (a scheduler job of
its own, so a slow flag service never delays escalations) claims each due one with a lease in one
transaction, calls the webhook with httpx outside any transaction (timeout and retries from
`rollback.webhook`), and records the outcome in a second transaction, which posts the HTTP status to the
war room (loudly when it failed). If the process dies mid-call the lease runs out and the call is made
again: at-least-once, which suits an idempotent flag-off (each call carries an `Idempotency-Key`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import httpx
from sqlmodel import Session, select

from bot.dispatch import Dispatcher
from commands.config import Webhook
from commands.rollback import WEBHOOK_KIND, WebhookOutcome, claim_webhook, record_webhook_outcome
from db.models import Timer

log = logging.getLogger("warroom.webhook")
MAX_BACKOFF_S = 4.0


def lease_for(webhook: Webhook | None) -> timedelta:
    """Long enough for every attempt and pause of one run, plus a margin."""
    if webhook is None:
        return timedelta(seconds=30)
    per_attempt = webhook.timeout.total_seconds() + min(webhook.timeout.total_seconds(), MAX_BACKOFF_S)
    return timedelta(seconds=(webhook.retries + 1) * per_attempt + 30)


def call_webhook(webhook: Webhook, *, key: str, sleep: Callable[[float], None] = time.sleep) -> WebhookOutcome:
    """POST (or the configured method) the flag change; retry timeouts, connection errors, 5xx and 429."""
    started = time.monotonic()
    attempts = webhook.retries + 1
    timeout = webhook.timeout.total_seconds()
    status: int | None = None
    error: str | None = None
    headers = {"Idempotency-Key": key, **dict(webhook.headers)}
    with httpx.Client(timeout=timeout) as client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.request(webhook.method, webhook.url, json=webhook.json, headers=headers)
            except httpx.TimeoutException:
                status, error = None, f"timed out after {timeout:g}s"
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: could not reach the flag service"
            else:
                status, error = response.status_code, None
                if 200 <= status < 300:
                    return WebhookOutcome(ok=True, status=status, attempts=attempt,
                                          elapsed_ms=(time.monotonic() - started) * 1000)
                if status < 500 and status != 429:  # a 4xx will not get better by asking again
                    break
            log.warning("flag webhook attempt failed", extra={"attempt": attempt, "status": status, "error": error})
            if attempt < attempts:
                sleep(min(timeout, MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1)))
    return WebhookOutcome(ok=False, status=status, error=error, attempts=attempt,
                          elapsed_ms=(time.monotonic() - started) * 1000)


def run_rollback_webhooks(dispatcher: Dispatcher) -> int:
    """Call every due flag webhook once. Returns how many this process called."""
    webhook = dispatcher.config.webhook
    now = dispatcher.clock.now()
    with Session(dispatcher.engine) as session:
        due = session.exec(
            select(Timer.id, Timer.launch_id).where(Timer.kind == WEBHOOK_KIND, Timer.done_at.is_(None),  # type: ignore[union-attr]
                                                    Timer.due_at <= now).order_by(Timer.id)  # type: ignore[operator]
        ).all()
        session.rollback()
    called = 0
    for timer_id, launch_id in due:
        try:
            claim = dispatcher.tick(lambda ctx, tid=timer_id: claim_webhook(ctx, tid, lease_for(webhook)),
                                    launch_id=launch_id)
            if claim is None:
                continue
            if webhook is None:
                outcome = WebhookOutcome(ok=False, error="no webhook configured", attempts=0)
            else:
                outcome = call_webhook(webhook, key=f"warroom-rollback-{launch_id}-{claim.rollback_id}")
                called += 1
            dispatcher.tick(lambda ctx, c=claim, o=outcome: record_webhook_outcome(ctx, c, o), launch_id=launch_id)
        except Exception:
            log.exception("flag webhook run failed", extra={"timer_id": timer_id})
    return called


# -- the rollout's phase webhook (commands/rollout.py): the same lease, call and retries, with the phase's
# percent in the body and its own Idempotency-Key ---------------------------------------------------------
def run_rollout_webhooks(dispatcher: Dispatcher) -> int:
    """Call every due phase webhook once. Returns how many this process called."""
    from commands.rollout import WEBHOOK_KIND as PHASE_KIND
    from commands.rollout import claim_phase_webhook, record_phase_webhook, with_percent

    webhook = dispatcher.config.rollout.webhook
    if webhook is None:  # no phase change queues a webhook then: no query every poll
        return 0
    now = dispatcher.clock.now()
    with Session(dispatcher.engine) as session:
        due = session.exec(
            select(Timer.id, Timer.launch_id).where(Timer.kind == PHASE_KIND, Timer.done_at.is_(None),  # type: ignore[union-attr]
                                                    Timer.due_at <= now).order_by(Timer.id)  # type: ignore[operator]
        ).all()
        session.rollback()
    called = 0
    for timer_id, launch_id in due:
        try:
            claimed = dispatcher.tick(lambda ctx, tid=timer_id: claim_phase_webhook(ctx, tid, lease_for(webhook)),
                                      launch_id=launch_id)
            if claimed is None:
                continue
            claim, percent = claimed
            body = with_percent(webhook.json, percent)
            outcome = call_webhook(webhook.model_copy(update={"json_": body}),
                                   key=f"warroom-rollout-{launch_id}-{claim.rollback_id}")
            called += 1
            dispatcher.tick(lambda ctx, c=claim, o=outcome: record_phase_webhook(ctx, c, o), launch_id=launch_id)
        except Exception:
            log.exception("rollout webhook run failed", extra={"timer_id": timer_id})
    return called
