"""PagerDuty's Events API v2, at the edge: each queued `pagerduty_event` is claimed with a lease, POSTed
with the routing key read from the environment now (never stored), and its answer recorded
(commands/paging.py). PagerDuty answers 202 `{"status": "success", "dedup_key": …}`; 400 is a refused
event, 429 and 5xx are tried again."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from bot.dispatch import Dispatcher
from bot.outside import lease_for, request, run_leased, without
from commands.config_beyond import PagerDuty
from commands.leases import CallOutcome
from commands.paging import PAGE_KIND, PageClaim, claim_page, record_page


def send_event(pagerduty: PagerDuty, event: dict[str, object], environ: Mapping[str, str] | None = None) -> CallOutcome:
    key = (os.environ if environ is None else environ).get(pagerduty.routing_key_env, "")
    if not key:
        return CallOutcome(ok=False, error=f"{pagerduty.routing_key_env} is not set", attempts=0)
    outcome = request("POST", pagerduty.url, body={"routing_key": key, **event}, headers={},
                      timeout=pagerduty.timeout.total_seconds(), retries=pagerduty.retries, service="PagerDuty")
    return without(outcome, key)


def run_pagerduty_events(dispatcher: Dispatcher) -> int:
    """Send every due PagerDuty event once. Returns how many this process sent."""
    pagerduty = dispatcher.config.paging.pagerduty
    lease: timedelta = lease_for(pagerduty.timeout if pagerduty else None, pagerduty.retries if pagerduty else 0)

    def call(claim: PageClaim) -> CallOutcome:
        if pagerduty is None:  # the config lost `paging:` under a restart
            return CallOutcome(ok=False, error="paging.pagerduty is not configured", attempts=0)
        return send_event(pagerduty, claim.event)

    return run_leased(dispatcher, PAGE_KIND, lambda ctx, tid: claim_page(ctx, tid, lease), call, record_page)
