"""Engines and transactions.

SQLite: WAL, a busy timeout, foreign keys on, and every write transaction opened with
BEGIN IMMEDIATE so a read-then-write never fails with "database is locked"; `reading()`
opens a plain BEGIN for polls that only read. PostgreSQL: a connection pool;
rows read to be changed are locked with FOR NO KEY UPDATE (`with_for_update(key_share=True)`):
it keeps changers of a row in turn as FOR UPDATE does, but does not block the foreign-key check
(FOR KEY SHARE) of a new row that points at it. With FOR UPDATE, a transaction holding its launch
locked and waiting for a channel lock (hold_channel) deadlocked with one holding that channel and
inserting a message of the launch. On both, `transaction()` lets one write
transaction at a time run in a process (see make_engine).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
import zlib
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

from db.deferred import READS_NO_TABLE, track_deferred_rows
from db.levels import levels, track_levels

try:
    import fcntl
except ImportError:  # not on Windows: threads of one process still take turns
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, WriteLock] = weakref.WeakKeyDictionary()
_HELD_CHANNELS = "warroom.held_channels"  # connection.info: the channel locks held, level by level (hold_channel)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # A pool, not a connection per transaction: opening one costs the PRAGMAs, and closing the
        # last one checkpoints the WAL (an fsync) — together most of a command's time when unpooled.
        pool: dict[str, Any] = {} if ":memory:" in url else {"poolclass": QueuePool, "pool_size": 8,
                                                              "max_overflow": 32, "pool_timeout": 60}
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
            **pool,
            **kwargs,
        )
        _configure_sqlite(engine)
    else:
        if url.startswith("postgresql"):  # an unreachable server fails in seconds (health, start-up), not minutes
            kwargs.setdefault("connect_args", {"connect_timeout": 5})
        # no pre-ping (a round trip per transaction): a connection the server dropped fails its
        # statement with a disconnect error, SQLAlchemy discards the pool's old connections, and
        # Dispatcher.run retries the command on a fresh one (the loops retry on their next pass)
        engine = create_engine(url, pool_size=10, max_overflow=20, **kwargs)
        if engine.dialect.name == "postgresql":  # which channel locks a transaction holds (hold_channel)
            track_levels(engine, _HELD_CHANNELS, set, set.update)
    # One write transaction at a time per process, queued on a lock that wakes the next writer at once.
    # SQLite: its busy handler sleeps in growing steps (up to 100 ms) and starves the unlucky — under 16
    # clients a 13 ms median came with a 1.4 s p99. PostgreSQL: every declaration updates its launch's
    # row; holders interrupted by the GIL made lock convoys (p99 573 ms -> 160 ms, throughput +9%).
    # The process is GIL-bound either way; replicas (other processes) still write side by side.
    _WRITE_LOCKS[engine] = WriteLock(_lock_file(url))
    track_deferred_rows(engine)
    return engine


def _lock_file(url: str) -> str | None:
    """SQLite on a file: the path of the lock file that writers of every process take turns on."""
    if not url.startswith("sqlite") or ":memory:" in url or "mode=memory" in url:
        return None
    database = make_url(url).database
    return f"{Path(database).resolve()}-writers" if database else None


class WriteLock:
    """One writer at a time: the threads of this process queue on an RLock; on SQLite the holder also
    takes an exclusive flock on a file beside the database, so `serve` workers and other processes
    on the same file queue in the kernel (woken at once) instead of in SQLite's sleeping busy handler."""

    def __init__(self, path: str | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._path = path
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> WriteLock:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1 and self._path and fcntl is not None:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            except BaseException:
                self._depth -= 1
                self._threads.release()
                raise
        return self

    def __exit__(self, *_: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own (locks are per open file)
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)  # type: ignore[arg-type]
            self._pid = os.getpid()
        return self._fd


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers take the write lock up front (no "database is locked" on upgrade); `reading()` does not
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("warroom_read_only") else "BEGIN IMMEDIATE")


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back if it raises."""
    with write_lock(engine), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


_READS = "warroom.reads"


def read_once(session: Session, key: Hashable, read: Callable[[], T]) -> T:
    """`read()` once per transaction: a lookup many commands of one transaction need (the launch, its
    role holders). Whatever changes what was read calls `forget_reads`; so does a command undone in a
    shared transaction (db/group_commit.py), and a rollback starts a new transaction, hence afresh."""
    current = session.get_transaction()
    entry = session.info.get(_READS)
    if entry is None or entry[0] is not current:
        entry = session.info[_READS] = (current, {})
    if key not in entry[1]:
        entry[1][key] = read()
    return entry[1][key]  # type: ignore[no-any-return]


def forget_reads(session: Session) -> None:
    session.info.pop(_READS, None)


CHANNEL_LOCK_SPACE = 872342  # pg_advisory_xact_lock(space, key): the outbox's channels


def hold_channel(connection: Connection, channel: str) -> None:
    """Before a transaction queues a message for `channel`: on PostgreSQL, wait for any other
    transaction that queued one for the same channel to end (a transaction-level advisory lock).

    The outbox sends a channel's messages in id order, and ids are handed out at INSERT, not at
    commit: without this, a replica that inserted message 10 and committed first would get it sent
    while message 7 of a slower transaction was not yet visible. SQLite has one writer at a time, so
    its commits are always in id order. Taken once per transaction and channel (db/levels.py).
    """
    if connection.dialect.name != "postgresql":
        return
    held = levels(connection, _HELD_CHANNELS, set)
    if any(channel in level for level in held):
        return
    key = zlib.crc32(channel.encode()) - 2**31  # a signed 32-bit key
    connection.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": CHANNEL_LOCK_SPACE, "key": key},
                       execution_options={READS_NO_TABLE: True})
    held[-1].add(channel)


def write_lock(engine: Engine) -> Any:
    """The process's turn to write on this engine (held by `transaction()`; for code that commits a
    Session of its own, like the scheduler's pass)."""
    return _WRITE_LOCKS.get(engine) or contextlib.nullcontext()


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A read-only unit of work. On SQLite it does not take the write lock, so polling readers
    (the outbox, the scheduler, /healthz) never queue behind or ahead of commands."""
    with Session(engine, expire_on_commit=False) as session:  # closing ends the transaction, keeps the rows loaded
        session.connection(execution_options={"warroom_read_only": True})
        yield session


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision (runs at start-up)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # replicas starting together migrate one at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(872341)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        conn.rollback()
