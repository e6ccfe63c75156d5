"""How long a one-row PostgreSQL commit takes on this machine with nothing of warroom running:
the floor under warroom's PostgreSQL tail latencies.

    python bench/commit_probe.py [--seconds 25]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import psycopg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    args = parser.parse_args()
    dsn = os.environ.get("WARROOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test").replace(
        "postgresql+psycopg://", "postgresql://")
    latencies: list[tuple[float, float]] = []
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE probe (id serial primary key, t float)")
        conn.commit()
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            t = time.perf_counter()
            cur.execute("INSERT INTO probe (t) VALUES (%s)", (t,))
            conn.commit()
            latencies.append(((time.perf_counter() - t) * 1000, time.monotonic() - start))
            time.sleep(0.01)
    ms = sorted(m for m, _ in latencies)
    print(f"command: python bench/commit_probe.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{len(ms)} one-row commits over {args.seconds:.0f} s: p50 {ms[len(ms) // 2]:.1f} ms, "
          f"p99 {ms[int(len(ms) * 0.99)]:.1f} ms, max {ms[-1]:.1f} ms")
    print("slowest:", ", ".join(f"{m:.0f} ms at {at:.1f}s" for m, at in sorted(latencies, reverse=True)[:5]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
