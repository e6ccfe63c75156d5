"""Ack latency and throughput of a signed `/incident sev1 …` over HTTP, at 1 and 16 concurrent
clients, beside a bare Bolt app that only acks, on the same waitress settings, in the same run,
on SQLite and on PostgreSQL; and beside the same bare app storing one row per request (its replay
key, in a shared transaction, on a database of its own) before it acks: the floor of any command
that is stored, then acked.

    python bench/ack.py                                  # both databases, default sizes
    python bench/ack.py --backends sqlite --total-16 2000

Each warroom request really declares an incident (stored, notification queued, clocks armed;
the reply is checked for "Declared INC-"); the outbox posts to a Slack stand-in in this process
at Slack's pace while the load runs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

from common import BareProcess, BotProcess, Load, bench_config, cpu_s, database, machine, run_load

from tests.processes import slash_body
from tests.standin import SlackStandin

FORM = "application/x-www-form-urlencoded"


def body_maker(tag: str) -> object:
    run = uuid.uuid4().hex[:6]

    def make(client: int, i: int) -> tuple[str, str]:
        return slash_body("/incident", f"sev1 checkout 500s from client {client} request {i}",
                          trigger=f"{tag}.{run}.{client}.{i}"), FORM
    return make


def declared(_: int, data: bytes) -> str | None:
    return None if b"Declared INC-" in data else f"unexpected reply {data[:80]!r}"


def acked(_: int, data: bytes) -> str | None:
    return None if b'"ok"' in data else f"unexpected reply {data[:80]!r}"


def bench_backend(kind: str, args: argparse.Namespace, workdir: Path) -> list[str]:
    rows: list[str] = []
    standin = SlackStandin().start()
    with database(kind, workdir) as url, database(kind, workdir) as floor_url:
        bot = BotProcess(database_url=url, api_url=standin.api_url, config_path=bench_config(workdir / "bench.yaml"),
                         log_path=workdir / f"warroom-{kind}.log")
        bare = BareProcess(workdir / f"bare-{kind}.log")
        stored = BareProcess(workdir / f"stored-{kind}.log", database_url=floor_url)
        apps = (("bare Bolt", bare, acked), ("bare Bolt + 1 stored row", stored, acked), ("warroom", bot, declared))
        try:
            for _, proc, check in apps:
                proc.wait_ready()
                run_load(proc.port, body_maker("warm"), clients=4, total=args.warmup, check=check)  # type: ignore[arg-type]
            for clients, total in ((1, args.total_1), (16, args.total_16)):
                results: dict[str, Load] = {}
                for name, proc, check in apps:
                    cpu0 = cpu_s(proc.proc.pid)
                    results[name] = run_load(proc.port, body_maker(name), clients=clients, total=total,  # type: ignore[arg-type]
                                             check=check)
                    cpu_ms = (cpu_s(proc.proc.pid) - cpu0) * 1000 / max(results[name].n, 1)
                    rows.append(results[name].row(f"{kind} · {name} · {clients} client{'s' if clients > 1 else ''}")
                                + f" {cpu_ms:.2f} |")
                    print(rows[-1], flush=True)
                    if results[name].failures:
                        print(f"  failures: {results[name].failures[:3]}", flush=True)
                for name in ("bare Bolt + 1 stored row", "warroom"):
                    ratio = results[name].throughput / results["bare Bolt"].throughput
                    rows.append(f"| {kind} · {name} / bare at {clients} client(s) | | | | | | {ratio:.2f}× | | |")
                    print(rows[-1], flush=True)
        finally:
            for _, proc, _ in apps:
                proc.stop()
            standin.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--total-1", type=int, default=300, help="requests at 1 client")
    parser.add_argument("--total-16", type=int, default=3000, help="requests at 16 clients")
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: python bench/ack.py {' '.join(sys.argv[1:])}".rstrip())
    print("| run | requests | p50 ms | p95 ms | p99 ms | mean ms | req/s | errors | server CPU ms/req |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        for kind in args.backends:
            bench_backend(kind, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
