"""The rollback's feature-flag webhook, called at the edge: never inside a transaction, never in the 3 s ack.

A confirmed rollback leaves a `rollback_webhook` Timer due now. `run_rollback_webhooks` (a scheduler job of
its own, so a slow flag service never delays escalations) goes through bot/outside.py's `run_leased`:
each due one is claimed with a lease in one transaction, the webhook is called with httpx outside any
transaction (timeout and retries from `rollback.webhook`), and the outcome is recorded in a second
transaction, which posts the HTTP status to the war room (loudly when it failed). If the process dies
mid-call the lease runs out and the call is made again: at-least-once, which suits an idempotent flag-off
(each call carries an `Idempotency-Key`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from bot.dispatch import Dispatcher
from bot.outside import lease_for as outside_lease
from bot.outside import request, run_leased
from commands.config_types import Webhook
from commands.leases import CallOutcome, Lease
from commands.rollback import WEBHOOK_KIND, claim_webhook, record_webhook_outcome
from commands.rollout import WEBHOOK_KIND as PHASE_KIND
from commands.rollout import claim_phase_webhook, record_phase_webhook, with_percent


def lease_for(webhook: Webhook | None) -> timedelta:
    """Long enough for every attempt and pause of one run, plus a margin."""
    return outside_lease(webhook.timeout if webhook else None, webhook.retries if webhook else 0)


def call_webhook(webhook: Webhook, *, key: str, sleep: Callable[[float], None] = time.sleep) -> CallOutcome:
    """POST (or the configured method) the flag change; retry timeouts, connection errors, 5xx and 429."""
    return request(webhook.method, webhook.url, body=webhook.json,
                   headers={"Idempotency-Key": key, **dict(webhook.headers)},
                   timeout=webhook.timeout.total_seconds(), retries=webhook.retries, service="the flag service",
                   sleep=sleep)


def run_rollback_webhooks(dispatcher: Dispatcher) -> int:
    """Call every due flag webhook once. Returns how many this process called."""
    webhook = dispatcher.config.webhook

    def call(claim: Lease) -> CallOutcome:
        if webhook is None:
            return CallOutcome(ok=False, error="no webhook configured", attempts=0)
        return call_webhook(webhook, key=f"warroom-rollback-{claim.launch_id}-{claim.subject_id}")

    return run_leased(dispatcher, WEBHOOK_KIND, lambda ctx, tid: claim_webhook(ctx, tid, lease_for(webhook)),
                      call, record_webhook_outcome)


# -- the rollout's phase webhook (commands/rollout.py): the same lease, call and retries, with the phase's
# percent in the body and its own Idempotency-Key ---------------------------------------------------------
def run_rollout_webhooks(dispatcher: Dispatcher) -> int:
    """Call every due phase webhook once. Returns how many this process called."""
    webhook = dispatcher.config.rollout.webhook
    if webhook is None:  # no phase change queues a webhook then
        return 0

    def call(claimed: tuple[Lease, float]) -> CallOutcome:
        claim, percent = claimed
        return call_webhook(webhook.model_copy(update={"json_": with_percent(webhook.json, percent)}),
                            key=f"warroom-rollout-{claim.launch_id}-{claim.subject_id}")

    return run_leased(dispatcher, PHASE_KIND, lambda ctx, tid: claim_phase_webhook(ctx, tid, lease_for(webhook)),
                      call, lambda ctx, claimed, outcome: record_phase_webhook(ctx, claimed[0], outcome))
