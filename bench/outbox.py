"""Outbox delivery: throughput across 50 channels with the stand-in enforcing Slack's pace
(a second post to a channel within 0.9 s gets 429), and the time to drain 1,000 messages
queued during an outage once Slack answers again.

    python bench/outbox.py                      # SQLite, 60 s outage
    python bench/outbox.py --outage 15 --backends sqlite postgresql

The real Outbox (its own loop, 1 post/s/channel, real clock) and the real WebClient
transport talk to the stand-in over HTTP. Afterwards every message is checked: posted
exactly once (by its metadata), in order within its channel.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import database, machine
from sqlalchemy import func
from sqlmodel import select

from bot.clock import SystemClock
from bot.outbox import Outbox
from bot.transport import SlackTransport, make_client
from commands.config import parse_config
from commands.setup import ensure_launch
from db.models import OutboxMessage
from db.session import make_engine, migrate, reading, transaction
from tests.conftest import TEST_CONFIG
from tests.faults import outbox_id
from tests.harness import TOKEN
from tests.standin import SlackStandin


def queue(engine: object, launch_id: int, channels: int, per_channel: int, tag: str) -> None:
    now = SystemClock().now()
    with transaction(engine) as s:  # type: ignore[arg-type]
        for i in range(per_channel):  # interleaved, as commands from many war rooms would be
            for c in range(channels):
                s.add(OutboxMessage(launch_id=launch_id, kind="bench", channel=f"C0BENCH{c:02d}",
                                    payload={"text": f"{tag} {c} #{i}"}, created_at=now))


def pending(engine: object) -> int:
    with reading(engine) as s:  # type: ignore[arg-type]
        return int(s.exec(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == "pending")).one())


def wait_drained(engine: object, timeout: float) -> float:
    started = time.monotonic()
    while pending(engine) and time.monotonic() - started < timeout:
        time.sleep(0.05)
    if pending(engine):
        raise RuntimeError(f"{pending(engine)} still pending after {timeout}s")
    return time.monotonic() - started


def verify(standin: SlackStandin, expected: int) -> str:
    posts = standin.posts()
    ids = [outbox_id(p) for p in posts]
    twice = sum(1 for n in Counter(ids).values() if n > 1)
    by_channel: dict[str, list[int]] = {}
    for p in posts:
        by_channel.setdefault(p["channel"], []).append(outbox_id(p))  # type: ignore[arg-type]
    disorder = sum(1 for seq in by_channel.values() if seq != sorted(seq))
    rate_limited = sum(1 for c in standin.attempts("chat.postMessage") if c.status == 429)
    assert len(set(ids)) == expected and not twice and not disorder, (len(set(ids)), twice, disorder)
    return f"{len(set(ids))} delivered, 0 twice, 0 out of order, {rate_limited} answered 429"


def run(kind: str, args: argparse.Namespace, workdir: Path) -> None:
    with database(kind, workdir) as url:
        engine = make_engine(url)
        migrate(engine)
        config = parse_config(TEST_CONFIG)
        with transaction(engine) as s:
            launch_id = ensure_launch(s, config, SystemClock().now()).id
        standin = SlackStandin(enforce_pacing=True).start()
        client = make_client(TOKEN, standin.api_url, timeout=10, sdk_retries=False)
        outbox = Outbox(engine, SlackTransport(client), SystemClock(), pace_s=1.0)
        try:
            # 1. throughput, Slack up
            total = args.channels * args.per_channel
            queue(engine, launch_id, args.channels, args.per_channel, "up")  # type: ignore[arg-type]
            started = time.monotonic()
            outbox.start()
            elapsed = wait_drained(engine, timeout=300)
            print(f"| {kind} · {total} msgs, {args.channels} channels, Slack up | {elapsed:.1f} s | "
                  f"{total / elapsed:.1f} msg/s | {verify(standin, total)} |", flush=True)
            # 2. an outage, then the drain
            standin.reset()
            standin.outage()
            queue(engine, launch_id, args.channels, args.per_channel, "down")  # type: ignore[arg-type]
            time.sleep(args.outage)
            failed = sum(1 for c in standin.calls if c.status == 503)
            standin.end_outage()
            back = time.monotonic()
            drain = wait_drained(engine, timeout=600)
            print(f"| {kind} · {total} msgs queued during a {args.outage:.0f} s outage ({failed} attempts "
                  f"answered 503) | drained {drain:.1f} s after Slack came back | {total / drain:.1f} msg/s | "
                  f"{verify(standin, total)} |", flush=True)
            del started, back
        finally:
            outbox.stop()
            standin.stop()
            engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite"])
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--per-channel", type=int, default=20)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds Slack answers 503")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: python bench/outbox.py {' '.join(sys.argv[1:])}".rstrip())
    print("| run | time | rate | check |")
    print("| --- | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        for kind in args.backends:
            run(kind, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
