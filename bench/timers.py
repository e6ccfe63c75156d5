"""Benchmark the clocks: 10,000 open incidents across 100 launches.

    python bench/timers.py [--database-url URL] [--incidents 10000] [--launches 100] [--live 200]

Prints: the time of one scheduler pass (idle over every pending deadline, and with
due work), the delay from a deadline to its post (p50/p99) with the real
scheduler and outbox running on real time against an instant fake Slack, and the
resident memory. Targets (issue 3): pass < 200 ms, delay p99 < 2 s, RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, update  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from bot.clock import SystemClock  # noqa: E402
from bot.dispatch import Dispatcher  # noqa: E402
from bot.outbox import Outbox, Outcome  # noqa: E402
from bot.runtime import freeze_heap, wire  # noqa: E402
from bot.scheduler import Scheduler, run_due  # noqa: E402
from commands.config import parse_config  # noqa: E402
from db.models import Incident, Launch, OutboxMessage, RoleAssignment, Timer  # noqa: E402
from db.session import make_engine, migrate, transaction  # noqa: E402

FAR = timedelta(days=30)


class InstantSlack:
    """A transport that answers ok at once and notes when each message was posted."""

    def __init__(self) -> None:
        self.posted: dict[int, float] = {}
        self._lock = threading.Lock()
        self._n = 0

    def send(self, message: OutboxMessage, thread_ts: str | None, update_ts: str | None) -> Outcome:
        with self._lock:
            self._n += 1
            assert message.id is not None
            self.posted[message.id] = time.time()
            return Outcome(ok=True, ts=f"1700000000.{self._n:06d}")

    def find_sent(self, message: OutboxMessage, thread_ts: str | None) -> str | None:
        return None


def rss_mb() -> tuple[float, float]:
    current = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def populate(engine: object, launches: int, incidents: int, now: datetime) -> None:
    per_launch = incidents // launches
    with transaction(engine) as s:  # type: ignore[arg-type]
        for n in range(launches):
            launch = Launch(name=f"bench launch {n}", war_room=f"C0BENCH{n:03d}", timezone="UTC", t0=now,
                            created_at=now, incident_seq=per_launch)
            s.add(launch)
            s.flush()
            assert launch.id is not None
            for role, user in (("commander", "U0COMMANDER"), ("eng_oncall", "U0ENG"), ("exec", "U0EXEC")):
                s.add(RoleAssignment(launch_id=launch.id, role=role, user_id=f"{user}{n}", assigned_by="bench",
                                     assigned_at=now))
            rows = [Incident(launch_id=launch.id, number=i + 1, severity="sev1" if i % 3 == 0 else "sev2",
                             summary=f"bench incident {i + 1}", owner=f"U0COMMANDER{n}", declared_by="U0BENCH",
                             declared_at=now) for i in range(per_launch)]
            s.add_all(rows)
            s.flush()
            s.add_all([Timer(launch_id=launch.id, kind="escalation", subject_id=row.id, due_at=now + FAR,
                             created_at=now, payload={"level": 1, "severity": row.severity}) for row in rows])
            s.add_all([Timer(launch_id=launch.id, kind="plan_check", subject_id=row.id, due_at=now + FAR,
                             created_at=now, payload={}) for row in rows if row.severity == "sev1"])


def make_due(engine: object, count: int, at: datetime, spread_s: float = 0.0) -> list[int]:
    """Bring `count` escalation timers (spread over launches) due at `at` (+ up to spread_s)."""
    with transaction(engine) as s:  # type: ignore[arg-type]
        ids = list(s.exec(select(Timer.id).where(Timer.kind == "escalation", Timer.done_at.is_(None),  # type: ignore[union-attr]
                                                 Timer.due_at > at + timedelta(days=1))  # type: ignore[operator]
                          .order_by(Timer.subject_id)).all())
        step = max(len(ids) // count, 1)
        chosen = ids[::step][:count]
        slots = list(range(len(chosen)))
        random.Random(7).shuffle(slots)  # deadlines of one launch land at unrelated moments, as they do
        for i, timer_id in zip(slots, chosen, strict=True):
            offset = timedelta(seconds=spread_s * i / max(count - 1, 1)) if spread_s else timedelta(0)
            s.exec(update(Timer).where(Timer.id == timer_id).values(due_at=at + offset))  # type: ignore[call-overload]
    return chosen  # type: ignore[return-value]


def timed_pass(dispatcher: Dispatcher) -> tuple[float, int]:
    started = time.perf_counter()
    n = run_due(dispatcher)
    return (time.perf_counter() - started) * 1000, n


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(round(p / 100 * (len(ordered) - 1))), len(ordered) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--live", type=int, default=200, help="deadlines falling due during the live run")
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=10, help="passes with 100 due, for their spread")
    parser.add_argument("--no-freeze", action="store_true", help="skip gc.freeze() (Runtime.start does it)")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='warroom-bench-')}/bench.db"
    engine = make_engine(url)
    migrate(engine)
    config = parse_config({"launch": {"name": "bench"}, "run_of_show": []})
    clock = SystemClock()
    now = clock.now()

    t = time.perf_counter()
    populate(engine, args.launches, args.incidents, now - timedelta(minutes=1))
    with Session(engine) as s:
        pending = len(s.exec(select(Timer.id).where(Timer.done_at.is_(None))).all())  # type: ignore[union-attr]
    print(f"database: {url.split('://')[0]}; {args.incidents} open incidents across {args.launches} launches, "
          f"{pending} pending deadlines (set up in {time.perf_counter() - t:.1f} s)")

    dispatcher = Dispatcher(engine=engine, config=config, clock=clock)
    if not args.no_freeze:
        freeze_heap()  # as Runtime.start() does once the bot is built
    idle = [timed_pass(dispatcher)[0] for _ in range(5)]
    print(f"scheduler pass, nothing due (over {pending} pending): median {statistics.median(idle):.1f} ms, "
          f"max {max(idle):.1f} ms")
    for due in (1, 10, 100):
        make_due(engine, due, clock.now() - timedelta(seconds=1))
        ms, n = timed_pass(dispatcher)
        print(f"scheduler pass with {due} due escalation(s): {ms:.1f} ms for {n} run ({ms / max(n, 1):.1f} ms each)")
    if args.repeat > 1:  # one pass is one sample: a garbage collection or a busy neighbour moves it a lot
        more = [ms]
        for _ in range(args.repeat - 1):
            make_due(engine, 100, clock.now() - timedelta(seconds=1))
            more.append(timed_pass(dispatcher)[0])
        print(f"scheduler pass with 100 due, {len(more)} passes: median {statistics.median(more):.1f} ms, "
              f"min {min(more):.1f} ms, max {max(more):.1f} ms")

    if args.live <= 0:
        engine.dispose()
        return 0
    # live: the real APScheduler wake-up and the real outbox on real time, an instant Slack.
    # The passes above queued messages nobody delivered: clear them so the live run starts with an empty outbox.
    with transaction(engine) as s:
        s.exec(delete(OutboxMessage))  # type: ignore[call-overload]
    transport = InstantSlack()
    outbox = Outbox(engine, transport, clock, workers=8)
    dispatcher = Dispatcher(engine=engine, config=config, clock=clock)
    scheduler = Scheduler(dispatcher, interval=1.0)
    wire(dispatcher, outbox, scheduler)  # as `serve` does: commits and posted pings wake the scheduler
    start = clock.now() + timedelta(seconds=2)
    chosen = make_due(engine, args.live, start, spread_s=args.live_seconds)
    with Session(engine) as s:
        due_by_incident = {t.subject_id: t.due_at for t in s.exec(select(Timer).where(Timer.id.in_(chosen))).all()}  # type: ignore[union-attr]
    outbox.start()
    scheduler.start()
    time.sleep(args.live_seconds + 5)
    scheduler.stop()
    outbox.stop()
    with Session(engine) as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "incident.escalation")).all()
        first_post: dict[int, float] = {}
        handled: dict[int, float] = {}
        for row in rows:
            if row.arms_timer_id is None or row.id not in transport.posted:
                continue
            incident_id = s.get(Timer, row.arms_timer_id).subject_id  # type: ignore[union-attr]
            if incident_id in due_by_incident:
                first_post[incident_id] = transport.posted[row.id]
                handled[incident_id] = row.created_at.timestamp()  # type: ignore[union-attr]
    to_post = [first_post[i] - due_by_incident[i].timestamp() for i in first_post]  # type: ignore[union-attr]
    to_claim = [handled[i] - due_by_incident[i].timestamp() for i in handled]  # type: ignore[union-attr]
    print(f"live: {len(to_post)} of {len(chosen)} deadlines posted during {args.live_seconds:.0f} s "
          f"(scheduler every 1 s, outbox paced 1 msg/s per channel)")
    if to_post:
        print(f"deadline -> handled: p50 {pct(to_claim, 50):.2f} s, p99 {pct(to_claim, 99):.2f} s")
        print(f"deadline -> war-room ping posted: p50 {pct(to_post, 50):.2f} s, p99 {pct(to_post, 99):.2f} s, "
              f"max {max(to_post):.2f} s")
    current, peak = rss_mb()
    print(f"memory: RSS {current:.0f} MB now, peak {peak:.0f} MB")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
