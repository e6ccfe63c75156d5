"""Real processes: SIGKILL during a burst, and several replicas on one PostgreSQL.

The Slack stand-in runs in the test process; each bot is `python -m bot serve` with
SLACK_API_URL pointing at it. Every check is made from the database and from the
stand-in's record of what was actually posted.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models import AuditEvent, Incident, Launch, OutboxMessage, Timer
from db.session import make_engine, transaction
from tests.conftest import TEST_CONFIG
from tests.faults import DELIVERED, add_launches, out_of_order, outbox_id, requires_postgres
from tests.harness import SECRET, TOKEN
from tests.processes import BotProcess, action_body, signed_post, slash_body, write_config
from tests.standin import SlackStandin

pytestmark = pytest.mark.process
DECLARED = re.compile(r"Declared INC-(\d+)")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "warroom.yaml", TEST_CONFIG)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = make_engine(database_url)
    yield e
    e.dispose()


def pending(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == "pending")).one())


def wait_drained(engine: Engine, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pending(engine) == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{pending(engine)} outbox rows still pending after {timeout}s")


def assert_posted_once(engine: Engine, standin: SlackStandin) -> list[OutboxMessage]:
    with Session(engine) as s:
        rows = list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())
    landed = [outbox_id(p) for p in standin.posts()]
    assert None not in landed
    twice = {i: n for i, n in Counter(landed).items() if n > 1}
    assert not twice, f"posted twice: {twice}"
    sent = {r.id for r in rows if r.status == "sent" and r.method == "chat.postMessage"}
    assert set(landed) == sent
    assert all(r.status in DELIVERED for r in rows), [(r.id, r.status, r.error) for r in rows if r.status not in DELIVERED]
    assert not (disorder := out_of_order({r.id: r for r in rows if r.id is not None}, standin.posts())), disorder
    return rows


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and SECRET not in text


def burst(url: str, stop: threading.Event, acked: list[tuple[str, int, str]], errors: list[str], prefix: str,
          channels: list[str], n_threads: int = 6) -> list[threading.Thread]:
    """Threads sending signed `/incident sev2` until stopped; acked = (channel, number, summary) of each 200."""

    def run(t: int) -> None:
        with httpx.Client() as client:
            i = 0
            while not stop.is_set():
                summary = f"{prefix} burst {t}-{i}"
                channel = channels[(t + i) % len(channels)]
                try:
                    r = signed_post(client, url, slash_body("/incident", f"sev2 {summary}", trigger=f"{prefix}.{t}.{i}",
                                                            channel=channel), timeout=5)
                except httpx.HTTPError:
                    return  # the process died under us: this command was never answered
                if r.status_code == 200:
                    m = DECLARED.search(r.json().get("text", ""))
                    if m:
                        acked.append((channel, int(m.group(1)), summary))
                    else:
                        errors.append(r.text)
                else:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                i += 1

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(n_threads)]
    for th in threads:
        th.start()
    return threads


def test_sigkill_during_a_burst_loses_nothing_and_posts_nothing_twice(
        database_url: str, engine: Engine, standin: SlackStandin, config_path: Path, tmp_path: Path) -> None:
    first = BotProcess(database_url=database_url, api_url=standin.api_url, config_path=config_path,
                       log_path=tmp_path / "first.log")
    first.wait_ready()
    channels = add_launches(engine, 10)  # ten war rooms: paced at 1 post/s each, they drain in seconds
    # Slack stores each post at once but answers 0.8 s later: the kill lands while posts are in flight
    standin.fail("chat.postMessage", delay=0.8, times=None)
    stop = threading.Event()
    acked: list[tuple[str, int, str]] = []
    errors: list[str] = []
    threads = burst(first.url, stop, acked, errors, "crash", channels)
    deadline = time.monotonic() + 10
    while (len(acked) < 40 or len(standin.posts()) < 3) and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()  # mid-burst: requests in flight, outbox rows claimed or half-sent
    stop.set()
    for th in threads:
        th.join(timeout=10)
    assert len(acked) >= 40 and not errors, errors[:3]
    standin.clear_faults()
    posted_before = len(standin.posts())
    with Session(engine) as s:
        marked = s.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")).one()
    in_flight = posted_before - marked  # landed in Slack, never marked sent: the restart must find these

    second = BotProcess(database_url=database_url, api_url=standin.api_url, config_path=config_path,
                        log_path=tmp_path / "second.log")
    try:
        second.wait_ready()
        wait_drained(engine)
    finally:
        second.stop()
    with Session(engine) as s:
        rooms = {launch.id: launch.war_room for launch in s.exec(select(Launch)).all()}
        stored = {(rooms[i.launch_id], i.number): i.summary for i in s.exec(select(Incident)).all()}
    for channel, number, summary in acked:  # every command that got HTTP 200 is in the database
        assert stored.get((channel, number)) == summary
    rows = assert_posted_once(engine, standin)
    notified = Counter((p["channel"], int(re.search(r"\(INC-(\d+)\)", p["text"]).group(1)))  # type: ignore[union-attr]
                       for p in standin.posts() if p["text"].startswith("INCIDENT"))
    assert set(notified) == set(stored) and set(notified.values()) == {1}
    assert len(rows) >= len(acked) and len(standin.posts()) >= posted_before
    assert in_flight >= 1 and len(standin.attempts("conversations.history")) >= in_flight
    assert_no_secrets(first.log(), second.log())


SITECUSTOMIZE = '''
"""Loaded by the bot processes of the replica test: a timer kind of the test's own."""
from commands.context import record
from commands.registry import timer
from db.models import OutboxMessage


@timer("fault_probe")
def _fault_probe(ctx, t):
    record(ctx, "fault_probe.fired", timer_id=t.id)
    ctx.session.add(OutboxMessage(launch_id=ctx.launch.id, kind="fault_probe", channel=f"C0PROBES{t.id % 5}",
                                  payload={"text": f"probe {t.id}"}, created_at=ctx.now))
'''


@requires_postgres
def test_replicas_on_one_postgres_deliver_everything_once(
        pg_url: str, standin: SlackStandin, config_path: Path, tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(SITECUSTOMIZE)
    bots = [BotProcess(database_url=pg_url, api_url=standin.api_url, config_path=config_path,
                       log_path=tmp_path / f"replica{i}.log", pythonpath=[str(plugin)]) for i in range(3)]
    engine = make_engine(pg_url)
    standin.enforce_pacing = True  # a second post to a channel within 0.9 s is answered 429, whoever sent it
    try:
        for b in bots:  # started together on a fresh database: they race to migrate and create the launch
            b.wait_ready()
        channels = add_launches(engine, 10)
        with transaction(engine) as s:
            launch = s.exec(select(Launch).where(Launch.war_room == "C0WARROOM")).one()
            now = datetime.now(UTC)
            for _ in range(30):
                s.add(Timer(launch_id=launch.id, kind="fault_probe", due_at=now, created_at=now, payload={}))
        statuses: list[int] = []
        declared: list[tuple[str, int]] = []
        with httpx.Client() as client:
            for i in range(30):  # round-robin over the replicas, like a load spreader
                channel = channels[i % 10]
                r = signed_post(client, bots[i % 3].url, slash_body(
                    "/incident", f"sev2 replica {i}", trigger=f"r{i}", channel=channel))
                statuses.append(r.status_code)
                declared.append((channel, int(DECLARED.search(r.json().get("text", "")).group(1))))  # type: ignore[union-attr]
            for i, (channel, n) in enumerate(declared):
                body = (action_body("incident_ack", str(n), user="U0ENG", trigger=f"a{i}", channel=channel) if i % 2
                        else slash_body("/incident", f"update INC-{n} looking at replica {i}", trigger=f"u{i}",
                                        channel=channel))
                r = signed_post(client, bots[(i + 1) % 3].url, body)
                statuses.append(r.status_code)
        assert set(statuses) == {200}
        assert sorted(declared) == sorted((ch, n) for ch in channels for n in (1, 2, 3))
        # the 30 incident messages' updates share the workspace's Tier 3 pace (1.2 s apart): about 36 s
        wait_drained(engine, timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with Session(engine) as s:
                if not s.exec(select(Timer).where(Timer.kind == "fault_probe", Timer.done_at.is_(None))).all():  # type: ignore[union-attr]
                    break
            time.sleep(0.2)
        wait_drained(engine, timeout=10)
        with Session(engine) as s:
            fired = Counter(e.payload["timer_id"] for e in s.exec(
                select(AuditEvent).where(AuditEvent.kind == "fault_probe.fired")).all())
            acks = s.exec(select(Incident).where(Incident.acknowledged_at.is_not(None))).all()  # type: ignore[union-attr]
        assert len(fired) == 30 and set(fired.values()) == {1}  # every timer ran once, on one replica
        assert len(acks) == 15
        assert_posted_once(engine, standin)
        assert sorted(p["text"] for p in standin.posts() if p["channel"].startswith("C0PROBES")) == sorted(
            f"probe {t}" for t in fired)
        # the replicas share each channel's pace (ChannelPace): Slack never had to say "slow down"
        assert [c.status for c in standin.attempts("chat.postMessage")].count(429) == 0
        claimed_by = _claimers(engine)
        assert len(claimed_by) >= 2, claimed_by  # the work really was spread over replicas
    finally:
        for b in bots:
            b.stop()
        engine.dispose()
    assert_no_secrets(*(b.log() for b in bots))


def _claimers(engine: Engine) -> set[Any]:
    with Session(engine) as s:
        return set(s.exec(select(OutboxMessage.claimed_by).distinct()).all())


def test_two_processes_on_one_sqlite_file_never_see_database_is_locked(
        tmp_path: Path, standin: SlackStandin, config_path: Path) -> None:
    """Two `serve` processes writing one SQLite file at once: BEGIN IMMEDIATE plus the busy
    timeout make the second writer wait its turn; no command fails with "database is locked"."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = BotProcess(database_url=url, api_url=standin.api_url, config_path=config_path,
                       log_path=tmp_path / "a.log")
    first.wait_ready()  # the first migrates; the second finds the schema in place
    second = BotProcess(database_url=url, api_url=standin.api_url, config_path=config_path,
                        log_path=tmp_path / "b.log")
    engine = make_engine(url)
    try:
        second.wait_ready()
        channels = add_launches(engine, 10)
        stop = threading.Event()
        acked: list[tuple[str, int, str]] = []
        errors: list[str] = []
        threads = [*burst(first.url, stop, acked, errors, "a", channels, n_threads=4),
                   *burst(second.url, stop, acked, errors, "b", channels, n_threads=4)]
        time.sleep(3)
        stop.set()
        for th in threads:
            th.join(timeout=30)
        assert len(acked) > 50 and not errors, errors[:3]
        with Session(engine) as s:  # every answered command stored (none failed on a lock)
            assert int(s.exec(select(func.count()).select_from(Incident)).one()) == len(acked)
    finally:
        first.stop()
        second.stop()
        engine.dispose()
    for log in (first.log(), second.log()):
        assert "database is locked" not in log and "OperationalError" not in log
        assert "write conflict" not in log  # not even a retried one
