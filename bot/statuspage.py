"""Atlassian Statuspage's API, at the edge: each confirmed `statuspage_update` is claimed with a lease and
sent with the API key read from the environment now (header `Authorization: OAuth <key>`, never stored):
the incident's first update creates the page incident (`POST /pages/<page_id>/incidents`), later ones
update it (`PATCH /pages/<page_id>/incidents/<id>`). The outcome is recorded by commands/statuspage.py.

Statuspage has no idempotency key, so a create is looked for before it is made again: after an attempt
that may have landed (no answer, a 5xx) and on a later claim (a runner died mid-call), an unresolved page
incident of the same name (`GET …/incidents/unresolved`) is taken as the one created."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

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
    headers = {"Authorization": f"OAuth {key}"}
    if claim.page_incident_id is not None:
        return without(request("PATCH", f"{incidents}/{quote(claim.page_incident_id, safe='')}", body=claim.body,
                               headers=headers, timeout=api.timeout.total_seconds(), retries=api.retries,
                               service="Statuspage"), key)

    def landed() -> CallOutcome | None:
        return find_created(incidents, headers, str(claim.body["incident"]["name"]), api.timeout.total_seconds())

    if claim.lease.claim > 1 and (found := landed()) is not None:
        return without(found, key)
    return without(request("POST", incidents, body=claim.body, headers=headers, timeout=api.timeout.total_seconds(),
                           retries=api.retries, service="Statuspage", landed=landed), key)


def find_created(incidents: str, headers: Mapping[str, str], name: str, timeout: float) -> CallOutcome | None:
    """The newest unresolved page incident named `name`, as a create's outcome; None when there is none or
    Statuspage does not answer (then the create is made again: at least once)."""
    try:
        response = httpx.get(f"{incidents}/unresolved", headers=dict(headers), timeout=timeout)
        listed: Any = response.json() if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return None
    named = [i for i in listed if isinstance(i, dict) and i.get("name") == name and i.get("id")] \
        if isinstance(listed, list) else []
    if not named:
        return None
    newest = max(named, key=lambda i: str(i.get("created_at") or ""))
    return CallOutcome(ok=True, status=response.status_code, body=newest)


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
