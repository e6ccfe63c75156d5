"""Against a real Prometheus server (Debian's `prometheus`, installed by .ci/run): it scrapes a small exporter
served here and warroom's own `GET /metrics`, so the bot's query goes through Prometheus's own engine and
warroom's exposition is read by Prometheus's own parser. Skipped, with the reason, only when the binary is
missing and CI is not set; in CI a missing binary fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from sqlmodel import select

from commands.config import Config, parse_config
from db.rollout import MetricReading
from tests.conftest import TEST_CONFIG
from tests.console_helpers import slash
from tests.harness import Harness
from tests.http_standin import HttpStandin, Reply, Request, free_port
from tests.times import at

BINARY = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
ERROR_RATE = 'sum(http_requests_total{code=~"5.."}) / sum(http_requests_total)'


@pytest.fixture(autouse=True)
def the_binary() -> None:
    if BINARY is None:
        reason = "the prometheus binary is not installed (apt-get install prometheus; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-Prometheus tests: {reason}")
        pytest.skip(reason)


class Exporter(HttpStandin):
    """The launch's application, as Prometheus sees it: 200 requests served, 3 of them 500s."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = CollectorRegistry()
        requests = Counter("http_requests", "Requests served", ["code"], registry=self.registry)
        requests.labels("200").inc(197)
        requests.labels("500").inc(3)

    @property
    def target(self) -> str:
        return self.base_url.removeprefix("http://")

    def answer(self, request: Request) -> Reply:
        return Reply(200, generate_latest(self.registry), content_type="text/plain; version=0.0.4")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warroom.db'}"  # Prometheus is what this file tests; one backend is enough


@pytest.fixture
def prom_port() -> int:
    return free_port()


@pytest.fixture
def config(prom_port: int) -> Config:
    prometheus = f"http://127.0.0.1:{prom_port}"
    return parse_config({**TEST_CONFIG, "metrics": {"every": "1m", "sources": [
        {"name": "error_rate", "prometheus": prometheus, "query": ERROR_RATE},
        {"name": "nothing", "prometheus": prometheus, "query": "no_such_metric_anywhere"},
        {"name": "broken", "prometheus": prometheus, "query": "sum(("}]},
        "rollout": {"phases": [{"name": "pilot", "percent": 5, "hold_for": "2h", "gates": ["error_rate < 0.01"]},
                               {"name": "GA", "percent": 100}]}})


@pytest.fixture
def prometheus(bot: Harness, prom_port: int, tmp_path: Path) -> Iterator[str]:
    exporter = Exporter().start()
    warroom = bot.url.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: app
    static_configs: [{{targets: ["{exporter.target}"]}}]
  - job_name: warroom
    static_configs: [{{targets: ["{warroom}"]}}]
""")
    assert BINARY is not None
    process = subprocess.Popen(
        [BINARY, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))  # noqa: SIM115
    url = f"http://127.0.0.1:{prom_port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, "Prometheus to be ready",
                 process, tmp_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        exporter.stop()


def wait_for(check: Any, what: str, process: subprocess.Popen[bytes] | None = None, logs: Path | None = None,
             timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            out = check()
            if out:
                return out
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    log = (logs / "prometheus.log").read_text() if logs else ""
    pytest.fail(f"gave up waiting for {what}\n{log[-2000:]}")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_the_reader_reads_a_real_prometheus_first_sample_and_stores_failures_as_failures(
        bot: Harness, prometheus: str) -> None:
    wait_for(lambda: query(prometheus, ERROR_RATE), "the exporter's first scrape")
    assert bot.runtime.scheduler.metrics.run_once() == 3
    with bot.session() as s:
        readings = {r.source: r for r in s.exec(select(MetricReading)).all()}
    assert readings["error_rate"].ok and readings["error_rate"].value == pytest.approx(0.015)
    assert (readings["nothing"].ok, readings["nothing"].value) == (False, None)
    assert readings["nothing"].error == "no data (the query returned no samples)"
    assert (readings["broken"].ok, readings["broken"].value) == (False, None)
    assert readings["broken"].error.startswith("query failed: ")  # Prometheus's own parse error
    slash(bot, "/rollout", "start")
    assert f"• `error_rate &lt; 0.01`: *fail* (0.015 at {at('10:00')})" in slash(bot, "/rollout")


def test_prometheus_scrapes_warroom_own_metrics(bot: Harness, prometheus: str) -> None:
    wait_for(lambda: query(prometheus, ERROR_RATE), "the exporter's first scrape")
    slash(bot, "/rollout", "start")  # a command timed, and war-room posts left pending (nothing delivered)
    bot.runtime.scheduler.metrics.run_once()  # failed readings, by source
    own = httpx.get(f"{bot.url}/metrics", timeout=5)
    assert own.status_code == 200 and own.headers["content-type"].startswith("text/plain")
    assert 'warroom_outbox_pending{channel="C0WARROOM"}' in own.text
    wait_for(lambda: query(prometheus, 'up{job="warroom"} == 1'), "Prometheus to scrape warroom")
    [pending] = wait_for(lambda: query(prometheus, 'warroom_outbox_pending{channel="C0WARROOM"}'), "outbox gauge")
    assert float(pending["value"][1]) >= 1
    [age] = query(prometheus, 'warroom_outbox_oldest_pending_age_seconds{channel="C0WARROOM"}')
    assert float(age["value"][1]) >= 0
    [latency] = query(prometheus, 'warroom_command_seconds_count{command="/rollout"}')
    assert float(latency["value"][1]) == 1
    # a scrape may have come between the command and the reading: wait for one after both
    failed = {r["metric"]["source"]: float(r["value"][1]) for r in wait_for(
        lambda: query(prometheus, "warroom_metric_readings_failed_total"), "the failed readings")}
    assert failed == {"nothing": 1.0, "broken": 1.0}
    assert float(query(prometheus, "warroom_rollout_percent")[0]["value"][1]) == 5
    timers = query(prometheus, "warroom_timers_due")
    assert all(float(t["value"][1]) >= 0 for t in timers)
    bot.deliver()  # delivered: latency and attempts observed, nothing pending
    wait_for(lambda: query(prometheus, "warroom_outbox_delivery_attempts_count > 0"), "the delivery histogram")
    wait_for(lambda: not query(prometheus, 'warroom_outbox_pending{channel="C0WARROOM"} > 0'), "the outbox emptied")
    assert float(query(prometheus, "warroom_database_up")[0]["value"][1]) == 1
