"""Atlassian Statuspage's API, at the edge: each confirmed `statuspage_update` is claimed with a lease and
sent with the API key read from the environment now (header `Authorization: OAuth <key>`, never stored):
the incident's first update creates the page incident (`POST /pages/<page_id>/incidents`), later ones
update it (`PATCH /pages/<page_id>/incidents/<id>`). The outcome is recorded by commands/statuspage.py."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

from bot.dispatch import Dispatcher
from bot.outside import lease_for, request, run_leased, without
from commands.config_beyond import Statuspage
from commands.leases import CallOutcome
from commands.statuspage import UPDATE_KIND, StatusClaim, claim_status_update, record_status_update


def send_update(api: Statuspage, claim: StatusClaim, environ: Mapping[str, str] | None = None) -> CallOutcome:
    key = (os.environ if environ is None else environ).get(api.api_key_env, "")
    if not key:
        return CallOutcome(ok=False, error=f"{api.api_key_env} is not set", attempts=0)
    incidents = f"{api.url.rstrip('/')}/pages/{api.page_id}/incidents"
    method, url = ("POST", incidents) if claim.page_incident_id is None else (
        "PATCH", f"{incidents}/{quote(claim.page_incident_id, safe='')}")
    outcome = request(method, url, body=claim.body, headers={"Authorization": f"OAuth {key}"},
                      timeout=api.timeout.total_seconds(), retries=api.retries, service="Statuspage")
    return without(outcome, key)


def run_statuspage_updates(dispatcher: Dispatcher) -> int:
    """Send every confirmed, due status-page update once. Returns how many this process sent."""
    api = dispatcher.config.status_page.statuspage
    lease = lease_for(api.timeout if api else None, api.retries if api else 0)

    def call(claim: StatusClaim) -> CallOutcome:
        if api is None:  # the config lost `status_page:` under a restart
            return CallOutcome(ok=False, error="status_page.statuspage is not configured", attempts=0)
        return send_update(api, claim)

    return run_leased(dispatcher, UPDATE_KIND, lambda ctx, tid: claim_status_update(ctx, tid, lease), call,
                      record_status_update)
