"""Soak: `python -m bot serve` under 20 requests a second (slash commands mixed with button
clicks, double clicks included) across 10 launches, each with its own war room, for a
configurable time. Then: every request answered 200 without an error, every message posted
exactly once and in order, nothing left undelivered, no ERROR in the bot's log, and the
bot's resident memory at the start against the end.

    python bench/soak.py --duration 600          # the issue's 10 minutes
    python bench/soak.py --duration 60           # a quick run

The mix is mostly reads (people looking), with state changes kept within what Slack takes: every ack
and resolve updates the incident's message, and `chat.update` is Tier 3, about 50 a minute for the
whole workspace. More than that only grows a queue that drains after the run (reported as drain time).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from common import BotProcess, bench_config, database, machine, rss_kb
from sqlalchemy import func
from sqlmodel import select

from db.models import Incident, OutboxMessage
from db.session import make_engine, reading
from tests.faults import DELIVERED, add_launches, out_of_order, outbox_id
from tests.processes import action_body, signed_post, slash_body
from tests.standin import SlackStandin

DECLARED = re.compile(r"Declared INC-(\d+)")
ERROR_WORDS = ("sorry", "hit an error", "try again")


class Room:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.lock = threading.Lock()
        self.open: list[int] = []
        self.acked: list[int] = []


# the mix's shares, cumulative: at 20 requests a second, 0.4 declarations, 0.2 acks and 0.2 resolves a
# second (0.6 message updates a second with the updates' replies, under Tier 3's 0.8), the rest reads
DECLARE, UPDATE, ACK, DOUBLE_ACK, RESOLVE = 0.02, 0.03, 0.04, 0.05, 0.06


def pick(rooms: list[Room], rnd: random.Random, respond: str, n: int) -> tuple[str, str]:
    """One request of the mix: (kind, body)."""
    room = rnd.choice(rooms)
    roll = rnd.random()
    with room.lock:
        if roll < DECLARE or (not room.open and not room.acked):
            return "declare:" + room.channel, slash_body("/incident", f"sev2 soak {n} in {room.channel}",
                                                         channel=room.channel, trigger=f"s{n}", response_url=respond)
        if roll < UPDATE and room.open:
            number = rnd.choice(room.open)
            return "update", slash_body("/incident", f"update INC-{number} soak note {n}", channel=room.channel,
                                        trigger=f"s{n}", response_url=respond)
        if roll < ACK and room.open:
            number = room.open.pop(0)
            room.acked.append(number)
            return "ack", action_body("incident_ack", str(number), user="U0ENG", channel=room.channel,
                                      trigger=f"s{n}", response_url=respond)
        if roll < DOUBLE_ACK and room.acked:
            return "double-ack", action_body("incident_ack", str(rnd.choice(room.acked)), user="U0ENG",
                                             channel=room.channel, trigger=f"s{n}", response_url=respond)
        if roll < RESOLVE and room.acked:
            number = room.acked.pop(0)
            return "resolve", action_body("incident_resolve", str(number), user="U0COMMANDER",
                                          channel=room.channel, trigger=f"s{n}", response_url=respond)
        text = "list" if roll < 0.5 else f"show INC-{rnd.randint(1, 3)}"
        return "read", slash_body("/incident", text, channel=room.channel, trigger=f"s{n}", response_url=respond)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second")
    parser.add_argument("--launches", type=int, default=10)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: python bench/soak.py {' '.join(sys.argv[1:])}".rstrip())
    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="warroom-soak-") as tmp, database(args.backend, Path(tmp)) as url:
        standin = SlackStandin(enforce_pacing=True).start()
        bot = BotProcess(database_url=url, api_url=standin.api_url, config_path=bench_config(Path(tmp) / "c.yaml"),
                         log_path=Path(tmp) / "bot.log")
        engine = make_engine(url)
        try:
            bot.wait_ready()
            rooms = [Room(ch) for ch in add_launches(engine, args.launches, prefix="C0SOAK")]
            respond = standin.base_url + "/respond/soak"
            kinds: Counter[str] = Counter()
            problems: list[str] = []
            latencies: list[float] = []
            slow: list[tuple[float, str, float]] = []
            started_at = [time.monotonic()]
            lock = threading.Lock()
            client = httpx.Client(limits=httpx.Limits(max_connections=32))

            def send(kind: str, body: str) -> None:
                started = time.perf_counter()
                try:
                    r = signed_post(client, bot.url, body, timeout=30)
                except httpx.HTTPError as exc:
                    with lock:
                        problems.append(f"{kind}: {type(exc).__name__}")
                    return
                ms = (time.perf_counter() - started) * 1000
                text = r.json().get("text", "") if r.content and r.headers.get("content-type", "").startswith(
                    "application/json") else ""
                with lock:
                    latencies.append(ms)
                    slow.append((ms, kind.split(":")[0], round(time.monotonic() - started_at[0], 2)))
                    if r.status_code != 200 or any(w in text.lower() for w in ERROR_WORDS):
                        problems.append(f"{kind}: {r.status_code} {text[:120]}")
                if kind.startswith("declare:"):
                    m = DECLARED.search(text)
                    room = next(x for x in rooms if x.channel == kind.split(":", 1)[1])
                    if m:
                        with room.lock:
                            room.open.append(int(m.group(1)))

            time.sleep(2)
            rss_idle = rss_kb(bot.proc.pid)
            rss_start = 0
            rss_samples: list[int] = []
            warmup = min(15.0, args.duration / 4)  # caches (compiled SQL, templates) fill in the first seconds
            pool = ThreadPoolExecutor(max_workers=16)
            started = time.monotonic()
            started_at[0] = started
            n = 0
            while time.monotonic() - started < args.duration:
                kind, body = pick(rooms, rnd, respond, n)
                kinds[kind.split(":")[0]] += 1
                pool.submit(send, kind, body)
                n += 1
                if not rss_start and time.monotonic() - started >= warmup:
                    rss_start = rss_kb(bot.proc.pid)
                if n % int(args.rate * max(args.duration / 10, 1)) == 0:
                    rss_samples.append(rss_kb(bot.proc.pid))
                time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            pool.shutdown(wait=True)
            load_s = time.monotonic() - started
            rss_end = rss_kb(bot.proc.pid)
            with reading(engine) as s:
                backlog = int(s.exec(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.status == "pending")).one())
            drain_started = time.monotonic()
            while True:
                with reading(engine) as s:
                    left = int(s.exec(select(func.count()).select_from(OutboxMessage).where(
                        OutboxMessage.status == "pending")).one())
                if not left or time.monotonic() - drain_started > 900:
                    break
                time.sleep(0.5)
            drain_s = time.monotonic() - drain_started
            rss_drained = rss_kb(bot.proc.pid)
            with reading(engine) as s:
                rows = list(s.exec(select(OutboxMessage)).all())
                incidents = int(s.exec(select(func.count()).select_from(Incident)).one())
            posts = standin.posts()
            ids = Counter(outbox_id(p) for p in posts)
            sent = {r.id for r in rows if r.status == "sent" and r.method == "chat.postMessage"}
            twice = [i for i, c in ids.items() if c > 1]
            lost = [r.id for r in rows if r.status not in DELIVERED]
            order_bad = out_of_order({r.id: r for r in rows if r.id is not None}, posts)
            ephemeral_errors = [c.args.get("text") for c in standin.attempts("response_url")
                                if any(w in str(c.args.get("text", "")).lower() for w in ERROR_WORDS)]
            log_errors = [line for line in bot.log().splitlines() if '"level": "ERROR"' in line]
            rate_limited = sum(1 for c in standin.attempts("chat.postMessage") if c.status == 429)
            latencies.sort()

            def pct(p: float) -> float:
                return latencies[min(len(latencies) - 1, int(p / 100 * (len(latencies) - 1)))] if latencies else 0.0

            report = {
                "backend": args.backend, "duration_s": round(load_s, 1), "requests": n,
                "achieved_rate": round(n / load_s, 1), "mix": dict(kinds),
                "ack_ms": {"p50": round(pct(50), 1), "p95": round(pct(95), 1), "p99": round(pct(99), 1),
                           "max": round(latencies[-1], 1) if latencies else None},
                "errors": len(problems) + len(ephemeral_errors), "first_errors": (problems + ephemeral_errors)[:5],
                "incidents": incidents, "outbox_rows": len(rows), "posts": len(posts),
                "posted_twice": len(twice), "lost_or_failed": len(lost), "out_of_order_channels": len(order_bad),
                "landed_not_marked": len(set(ids) - sent), "answered_429": rate_limited,
                "backlog_at_end_of_load": backlog, "drain_s": round(drain_s, 1),
                "slowest": [f"{ms:.0f} ms {k} at {at}s" for ms, k, at in sorted(slow, reverse=True)[:5]],
                "log_errors": len(log_errors), "first_log_errors": log_errors[:3],
                "rss_kb": {"idle_before_load": rss_idle, f"start_after_{warmup:.0f}s_warmup": rss_start,
                           "end_of_load": rss_end, "after_drain": rss_drained,
                           "change_start_to_end_pct": round((rss_end - rss_start) / rss_start * 100, 1)
                           if rss_start else None, "samples": rss_samples},
            }
            print(json.dumps(report, indent=2))
            ok = not (problems or ephemeral_errors or twice or lost or order_bad or log_errors)
            print("RESULT:", "ok" if ok else "PROBLEMS")
            return 0 if ok else 1
        finally:
            bot.stop()
            standin.stop()
            engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
