"""The probe loop: the edge that does the HTTP for the configured probes.

A pass claims the due checks (commands/probes.claim_due_checks, one short
transaction), fetches them concurrently with httpx (short timeouts, no database
transaction open), then stores the outcomes and lets commands/probes judge
them (another short transaction). Between passes it remembers when the next
check is due, so an idle second costs no database write.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx

from bot.dispatch import Dispatcher
from commands.config import Probe
from commands.probes import ProbeOutcome, claim_due_checks, next_check_at, record_results

log = logging.getLogger("warroom.probes")
MAX_TIMEOUT_S = 10.0
ENGAGEMENT_KEYS = ("active_sessions", "sessions", "engagement", "active", "value")


def engagement_value(body: Any) -> float | None:
    """An engagement probe answers a number, or JSON with one of ENGAGEMENT_KEYS."""
    if isinstance(body, bool):
        return None
    if isinstance(body, int | float):
        return float(body)
    if isinstance(body, dict):
        for key in ENGAGEMENT_KEYS:
            value = body.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return None


def check(client: httpx.Client, probe: Probe, checked_at: datetime) -> ProbeOutcome:
    """One GET; any answer below 400 in time is ok; a failure is never a zero latency."""
    timeout = min(probe.timeout.total_seconds(), MAX_TIMEOUT_S)
    started = time.monotonic()
    try:
        response = client.get(probe.url, timeout=timeout)
    except httpx.TimeoutException:
        return ProbeOutcome(probe.name, checked_at, ok=False, error=f"timeout after {timeout:g}s")
    except httpx.HTTPError as exc:
        return ProbeOutcome(probe.name, checked_at, ok=False, error=f"unreachable ({type(exc).__name__})")
    latency = (time.monotonic() - started) * 1000
    if response.status_code >= 400:
        return ProbeOutcome(probe.name, checked_at, ok=False, status_code=response.status_code,
                            latency_ms=latency, error=f"HTTP {response.status_code}")
    value = None
    if probe.metric == "engagement":
        try:
            value = engagement_value(response.json())
        except ValueError:
            value = None
        if value is None:
            return ProbeOutcome(probe.name, checked_at, ok=False, status_code=response.status_code,
                                latency_ms=latency, error="no active_sessions number in the answer")
    return ProbeOutcome(probe.name, checked_at, ok=True, latency_ms=latency, status_code=response.status_code,
                        value=value)


class ProbeLoop:
    def __init__(self, dispatcher: Dispatcher, *, workers: int = 8) -> None:
        self.dispatcher = dispatcher
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._client = httpx.Client(follow_redirects=True, headers={"User-Agent": "warroom-probe"})
        self._next_at: datetime | None = None

    def run_once(self) -> int:
        """One pass: check what is due. Returns how many probes were checked."""
        if not self.dispatcher.config.probes:
            return 0
        now = self.dispatcher.clock.now()
        if self._next_at is not None and now < self._next_at:
            return 0
        due: list[Probe] = self.dispatcher.tick(claim_due_checks)
        if due:
            checked_at = self.dispatcher.clock.now()
            outcomes = list(self._pool.map(lambda p: check(self._client, p, checked_at), due))
            self.dispatcher.tick(lambda ctx: record_results(ctx, outcomes))
            for o in outcomes:
                log.info("probe checked", extra={"probe": o.name, "ok": o.ok, "latency_ms": o.latency_ms,
                                                  "error": o.error})
        self._next_at = self.dispatcher.tick(next_check_at)
        return len(due)

    def forget_schedule(self) -> None:
        """Tests move the clock backwards; the next pass asks the database again."""
        self._next_at = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
