"""Ack latency and throughput of a signed `/incident sev1 …` over HTTP against `python -m bot serve`,
at 1 and 16 concurrent clients and in a burst (1,000 commands from 100 connections at once), on SQLite
and on PostgreSQL.

    python bench/ack.py                                  # both databases, default sizes
    python bench/ack.py --backends sqlite --total-16 2000
    python bench/ack.py --server gunicorn                # two worker processes (gunicorn -w 2) instead of one

Each request really declares an incident (stored, notification queued, clocks armed; the reply is
checked for "Declared INC-"); the outbox posts to a Slack stand-in in this process while the load
runs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

from common import BotProcess, bench_config, cpu_s, database, machine, run_load

from tests.processes import slash_body
from tests.standin import SlackStandin

FORM = "application/x-www-form-urlencoded"
# how the bot is served: `python -m bot serve` (one process, waitress), or two gunicorn workers (README)
SERVERS = {
    "serve": ("-m", "bot", "serve"),
    "gunicorn": ("-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "16", "--backlog", "256",
                 "-b", "127.0.0.1:{port}", "bot.wsgi:app"),
}


def body_maker(tag: str) -> object:
    run = uuid.uuid4().hex[:6]

    def make(client: int, i: int) -> tuple[str, str]:
        # each from a user of its own, as in a war room of many people (one user would meet the limits)
        return slash_body("/incident", f"sev1 checkout 500s from client {client} request {i}",
                          user=f"U0C{client}N{i}", trigger=f"{tag}.{run}.{client}.{i}"), FORM
    return make


def declared(_: int, data: bytes) -> str | None:
    return None if b"Declared INC-" in data else f"unexpected reply {data[:80]!r}"


def bench_backend(kind: str, args: argparse.Namespace, workdir: Path) -> None:
    standin = SlackStandin().start()
    with database(kind, workdir) as url:
        bot = BotProcess(database_url=url, api_url=standin.api_url, config_path=bench_config(workdir / "bench.yaml"),
                         log_path=workdir / f"warroom-{kind}.log", server=SERVERS[args.server])
        try:
            bot.wait_ready()
            run_load(bot.port, body_maker("warm"), clients=4, total=args.warmup, check=declared)  # type: ignore[arg-type]
            for label, clients, total in (("1 client", 1, args.total_1), ("16 clients", 16, args.total_16),
                                          ("burst: 100 connections at once", 100, args.burst)):
                cpu0 = cpu_s(bot.proc.pid)
                load = run_load(bot.port, body_maker(label), clients=clients, total=total, check=declared)  # type: ignore[arg-type]
                cpu_ms = (cpu_s(bot.proc.pid) - cpu0) * 1000 / max(load.n, 1)
                print(load.row(f"{kind} · {label}") + f" {max(load.latencies_ms):.0f} | {cpu_ms:.2f} |", flush=True)
                if load.failures:
                    print(f"  failures: {load.failures[:3]}", flush=True)
        finally:
            bot.stop()
            standin.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--total-1", type=int, default=300, help="requests at 1 client")
    parser.add_argument("--total-16", type=int, default=3000, help="requests at 16 clients")
    parser.add_argument("--burst", type=int, default=1000, help="requests in the burst from 100 connections")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--server", choices=sorted(SERVERS), default="serve")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: python bench/ack.py {' '.join(sys.argv[1:])}".rstrip())
    print("| run | requests | p50 ms | p95 ms | p99 ms | mean ms | req/s | errors | slowest ms | server CPU ms/req |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        for kind in args.backends:
            bench_backend(kind, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
