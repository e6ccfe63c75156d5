"""SQLite writers of different processes take turns on the lock file beside the database
(db/session.py WriteLock), so a second process queues in the kernel, not in SQLite's busy handler."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models import Launch, OutboxMessage, SeenRequest
from db.session import make_engine, migrate, transaction, write_lock
from tests.faults import requires_postgres

ROOT = Path(__file__).resolve().parent.parent


def hold_lock_in_another_process(url: str, seconds: float) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import sys, time
        from db.session import make_engine, write_lock
        engine = make_engine({url!r})
        with write_lock(engine):
            print("held", flush=True)
            time.sleep({seconds})
        print("released", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_writer_waits_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = make_engine(url)
    migrate(engine)
    # the other process holds only the lock, no SQLite transaction: without the lock file we would not wait
    other = hold_lock_in_another_process(url, 1.0)
    started = time.monotonic()
    with transaction(engine) as session:
        waited = time.monotonic() - started
        session.add(SeenRequest(key="after-the-other", seen_at=datetime.now(UTC)))
    assert other.wait(timeout=10) == 0
    assert waited >= 0.7, f"took the write lock after {waited:.2f} s while another process held it"
    with transaction(engine) as session:
        assert session.exec(select(SeenRequest.key)).all() == ["after-the-other"]
    engine.dispose()


def test_the_write_lock_is_reentrant_in_one_thread(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    with write_lock(engine), write_lock(engine), transaction(engine) as session:  # nested: no self-deadlock
        session.add(SeenRequest(key="nested", seen_at=datetime.now(UTC)))
    other = hold_lock_in_another_process(f"sqlite:///{tmp_path / 'r.db'}", 0.1)  # released after the nest
    assert other.wait(timeout=10) == 0
    engine.dispose()


def launch_on(url: str, war_room: str) -> tuple[Engine, Launch, datetime]:
    """A migrated database with one launch whose war room is `war_room`."""
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    with transaction(engine) as session:
        launch = Launch(name=war_room, war_room=war_room, timezone="UTC", created_at=now)
        session.add(launch)
    return engine, launch, now


@requires_postgres
def test_messages_to_one_channel_commit_in_id_order_across_processes(pg_url: str) -> None:
    """Replicas write side by side on PostgreSQL: a second writer's message to the same channel waits for
    the first transaction to end, so the outbox never sees message 2 while message 1 is still uncommitted
    (it sends a channel's messages in id order)."""
    engine, launch, now = launch_on(pg_url, "C0ORDER")
    second_committed = threading.Event()

    def second_writer() -> None:  # another replica: its own connection, no shared process lock
        with Session(engine) as session:
            session.add(OutboxMessage(launch_id=launch.id, kind="t", channel="C0ORDER", payload={"text": "2"},
                                      created_at=now))
            session.commit()
        second_committed.set()

    with Session(engine) as first:
        first.add(OutboxMessage(launch_id=launch.id, kind="t", channel="C0ORDER", payload={"text": "1"},
                                created_at=now))
        first.flush()  # message 1 has its id and holds the channel
        writer = threading.Thread(target=second_writer)
        writer.start()
        assert not second_committed.wait(0.7), "a second message to the channel committed before the first"
        first.commit()
    writer.join(timeout=10)
    assert second_committed.is_set()
    with Session(engine) as session:
        texts = [m.payload["text"] for m in session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()]
    assert texts == ["1", "2"]
    engine.dispose()


@requires_postgres
def test_a_launch_locked_for_a_change_does_not_block_queueing_its_messages(pg_url: str) -> None:
    """Another replica holds the launch locked (a /role change, a rollback, a poll) and will queue a message
    next: a transaction already holding that channel can still queue its own message for the launch (the
    foreign-key check is not blocked), finish, and let the first go on. With FOR UPDATE this was a deadlock."""
    from commands.authority import locked_launch
    from commands.context import Context, queue

    engine, launch, now = launch_on(pg_url, "C0LOCKS")
    queued = threading.Event()

    def channel_first() -> None:  # the other replica: holds the channel, then inserts a row pointing at the launch
        with Session(engine, expire_on_commit=False) as session:
            ctx = Context(session=session, now=now, config=None, user="U0A", launch=session.get(Launch, launch.id))  # type: ignore[arg-type]
            queue(ctx, "C0LOCKS", kind="t", method="chat.postMessage", payload={"text": "from the other"})
            queued.set()
            session.commit()

    with Session(engine, expire_on_commit=False) as first:
        ctx = Context(session=first, now=now, config=None, user="U0B", launch=first.get(Launch, launch.id))  # type: ignore[arg-type]
        locked_launch(ctx)  # the launch row is locked by this transaction
        other = threading.Thread(target=channel_first)
        other.start()
        assert queued.wait(5), "queueing a message of a locked launch waited for the launch lock"
        queue(ctx, "C0LOCKS", kind="t", method="chat.postMessage", payload={"text": "mine"})  # waits for the other
        first.commit()
    other.join(timeout=10)
    with Session(engine) as session:
        texts = [m.payload["text"] for m in session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()]
    assert texts == ["from the other", "mine"]
    engine.dispose()
