"""What the benches share: databases, a bench config, the servers under test as real
processes, a load generator over keep-alive HTTP, and percentiles."""

from __future__ import annotations

import http.client
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import sign  # noqa: E402
from tests.processes import BotProcess  # noqa: E402

PG_ADMIN = os.environ.get("WARROOM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.system()} {platform.release()}, Python {platform.python_version()}, {cpus} CPUs ({model}), "
            f"load average {load:.2f} at start")


def bench_config(path: Path, war_rooms: int = 0) -> Path:
    """The launch of the tests, with T0 a month away so no run-of-show mark fires during a bench."""
    t0 = (datetime.now(UTC) + timedelta(days=30)).isoformat(timespec="seconds")
    config = {
        "launch": {"name": "HotDash Control Center", "t0": t0, "timezone": "America/Los_Angeles"},
        "channels": {"war_room": "C0WARROOM", "broadcast": ["C0OPERATORS"]},
        "roles": {"commander": "U0COMMANDER", "scribe": "U0SCRIBE", "eng_oncall": "U0ENG", "devops": "U0DEVOPS",
                  "cx": "U0CX", "exec": "U0EXEC"},
        "run_of_show": [{"at": "T-1h", "text": "Pre-flight"}],
        "limits": {"per_user_per_minute": 10000, "declarations_per_user_per_hour": 10000},  # load from few users
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        return
    name = f"warroom_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process and its live children (gunicorn's workers) have used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return own + sum(cpu_s(kid) for kid in kids)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Load:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def n(self) -> int:
        return len(self.latencies_ms)

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    @property
    def throughput(self) -> float:
        return self.n / self.elapsed_s if self.elapsed_s else 0.0

    def row(self, label: str) -> str:
        mean = statistics.fmean(self.latencies_ms) if self.latencies_ms else float("nan")
        return (f"| {label} | {self.n} | {self.pct(50):.1f} | {self.pct(95):.1f} | {self.pct(99):.1f} | {mean:.1f} | "
                f"{self.throughput:.0f} | {self.errors} |")

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200) + len(self.failures)


def run_load(port: int, make_body: Callable[[int, int], tuple[str, str]], *, clients: int, total: int,
             check: Callable[[int, bytes], str | None] | None = None) -> Load:
    """`clients` threads, each on one keep-alive connection, send `total` signed POSTs in all.
    make_body(client, i) -> (body, content type); bodies are signed just before they are sent."""
    load = Load()
    lock = threading.Lock()
    per = [total // clients + (1 if c < total % clients else 0) for c in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        codes: dict[int, int] = {}
        bad: list[str] = []
        start.wait()
        for i in range(per[c]):
            body, content_type = make_body(c, i)
            headers = {"Content-Type": content_type, **sign(body)}
            t = time.perf_counter()
            try:
                conn.request("POST", "/slack/events", body=body.encode(), headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                bad.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            mine.append((time.perf_counter() - t) * 1000)
            codes[response.status] = codes.get(response.status, 0) + 1
            if check and response.status == 200:
                problem = check(c, data)
                if problem:
                    bad.append(problem)
        conn.close()
        with lock:
            load.latencies_ms.extend(mine)
            for k, v in codes.items():
                load.statuses[k] = load.statuses.get(k, 0) + v
            load.failures.extend(bad)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    load.elapsed_s = time.perf_counter() - t0
    return load


__all__ = ["BotProcess", "Load", "run_load", "database", "bench_config", "machine", "rss_kb", "cpu_s",
           "Any"]
