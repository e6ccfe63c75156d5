"""The metrics reader: the edge that reads the configured sources with httpx, every `metrics.every`.

A pass claims the due reading (commands/metrics.claim_due_reading, one short transaction), reads every
source concurrently with no transaction open, then stores the readings and checks the rollback triggers
(commands/triggers.record_readings, another transaction). A Prometheus source is an instant query
(`GET <prometheus>/api/v1/query?query=…`, the first sample's value); a `url` source is a JSON document
read at its dotted `json_path`. Whatever goes wrong (unreachable, HTTP error, no data, not a number)
is a failed reading with its reason, never a number.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx

from bot.dispatch import Dispatcher
from commands.metrics import Reading, claim_due_reading, next_reading_at
from commands.triggers import record_readings

log = logging.getLogger("warroom.metrics")
MAX_TIMEOUT_S = 10.0


class NoValue(Exception):
    """The source answered, but not with a number."""


def number(value: Any) -> float:
    """A finite number, from JSON's numbers or Prometheus's strings ("0.004", never "NaN" or "+Inf")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NoValue(f"{type(value).__name__} is not a number")
    try:
        parsed = float(value)
    except ValueError:
        raise NoValue(f"{str(value)[:40]!r} is not a number") from None
    if not math.isfinite(parsed):
        raise NoValue(f"{value!r} is not a finite number")
    return parsed


def at_path(document: Any, path: str) -> Any:
    """`latency.p95_ms` in {"latency": {"p95_ms": 850}}; a list is indexed by a number (`items.0.value`)."""
    here = document
    for key in path.split("."):
        if isinstance(here, dict) and key in here:
            here = here[key]
        elif isinstance(here, list) and key.isdigit() and int(key) < len(here):
            here = here[int(key)]
        else:
            raise NoValue(f"no {path} in the answer")
    return here


def prometheus_value(body: Any) -> float:
    """The first sample of an instant query's answer (vector or scalar); an empty result is no data, not zero."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise NoValue(f"query failed: {str(error)[:160]}" if error else "not a Prometheus API answer")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return number(result[1])
    if kind == "vector" and isinstance(result, list):
        if not result:
            raise NoValue("no data (the query returned no samples)")
        sample = result[0].get("value") if isinstance(result[0], dict) else None
        if isinstance(sample, list) and len(sample) == 2:
            return number(sample[1])
    raise NoValue(f"an answer of type {kind!r} has no first sample")


def read_source(client: httpx.Client, source: Any, read_at: datetime) -> Reading:
    timeout = min(source.timeout.total_seconds(), MAX_TIMEOUT_S)
    if source.kind == "prometheus":
        url, params = source.prometheus.rstrip("/") + "/api/v1/query", {"query": source.query}
    else:
        url, params = source.url, None
    try:
        response = client.get(url, params=params, timeout=timeout)
        if response.status_code >= 400 and source.kind != "prometheus":
            return Reading(source.name, read_at, error=f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return Reading(source.name, read_at, error=f"HTTP {response.status_code}, not JSON")
        value = prometheus_value(body) if source.kind == "prometheus" else number(at_path(body, source.json_path))
    except httpx.TimeoutException:
        return Reading(source.name, read_at, error=f"timeout after {timeout:g}s")
    except httpx.HTTPError as exc:
        return Reading(source.name, read_at, error=f"unreachable ({type(exc).__name__})")
    except NoValue as exc:
        return Reading(source.name, read_at, error=str(exc))
    return Reading(source.name, read_at, value=value)


class MetricsLoop:
    def __init__(self, dispatcher: Dispatcher, *, workers: int = 4) -> None:
        self.dispatcher = dispatcher
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metrics")
        self._client = httpx.Client(headers={"User-Agent": "warroom-metrics", "Accept": "application/json"})
        self._next_at: datetime | None = None

    def run_once(self) -> int:
        """One pass: read every source when the reading is due. Returns how many sources were read."""
        sources = self.dispatcher.config.metrics.sources
        if not sources:
            return 0
        now = self.dispatcher.clock.now()
        if self._next_at is not None and now < self._next_at:
            return 0
        if self.dispatcher.tick(claim_due_reading):
            read_at = self.dispatcher.clock.now()
            readings = list(self._pool.map(lambda s: read_source(self._client, s, read_at), sources))
            self.dispatcher.tick(lambda ctx: record_readings(ctx, readings))
            for r in readings:
                log.info("metric read", extra={"source": r.source, "ok": r.ok, "value": r.value, "error": r.error})
        else:
            readings = []
        self._next_at = self.dispatcher.tick(next_reading_at)
        return len(readings)

    def forget_schedule(self) -> None:
        self._next_at = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
