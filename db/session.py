"""Engines and transactions.

SQLite: WAL, a busy timeout, foreign keys on, and every write transaction opened with
BEGIN IMMEDIATE, so a read-then-write never fails with "database is locked"; `reading()`
opens a plain BEGIN for polls that only read. PostgreSQL: a connection pool; rows read to be
changed are locked with FOR NO KEY UPDATE (`with_for_update(key_share=True)`), which keeps
changers of a row in turn but does not block the foreign-key check of a new row pointing at it.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

from db.turns import Turns

try:
    import fcntl
except ImportError:  # not on Windows: there, processes migrating one SQLite file at once are not kept apart
    fcntl = None  # type: ignore[assignment]

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
_TURNS: weakref.WeakKeyDictionary[Engine, Turns] = weakref.WeakKeyDictionary()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # a pool: opening a connection costs the PRAGMAs, and closing the last one checkpoints the WAL
        pool: dict[str, Any] = {} if ":memory:" in url else {"poolclass": QueuePool, "pool_size": 8,
                                                              "max_overflow": 32, "pool_timeout": 60}
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
            **pool,
            **kwargs,
        )
        _configure_sqlite(engine)
        _TURNS[engine] = Turns()
        return engine
    if url.startswith("postgresql"):  # an unreachable server fails in seconds (health, start-up), not minutes
        kwargs.setdefault("connect_args", {"connect_timeout": 5})
    # a connection the server dropped fails its statement; SQLAlchemy discards the pool's old connections
    # and Dispatcher.run retries the command on a fresh one
    engine = create_engine(url, pool_size=10, max_overflow=20, **kwargs)
    _TURNS[engine] = Turns()
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        # no journal_mode here: WAL is kept in the file, set once by migrate() (see _use_wal)
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
    """One unit of work: committed when the block ends, rolled back if it raises. The writers of
    this process take turns (db/turns.py)."""
    with _TURNS.get(engine) or nullcontext(), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A read-only unit of work: on SQLite a plain BEGIN, so polling readers (the outbox, the
    scheduler, /healthz) never wait for a writer."""
    with Session(engine, expire_on_commit=False) as session:  # closing ends the transaction, keeps the rows loaded
        session.connection(execution_options={"warroom_read_only": True})
        yield session


CHANNEL_LOCK_SPACE = 872342  # pg_advisory_xact_lock(space, key): the outbox's channels


def hold_channel(connection: Connection, channel: str) -> None:
    """Before a transaction queues a message for `channel`: on PostgreSQL, wait for any other
    transaction that queued one for the same channel to end (a transaction-level advisory lock;
    taking it again in the same transaction returns at once).

    The outbox sends a channel's messages in id order, and ids are handed out at INSERT, not at
    commit: without this, a replica that inserted message 10 and committed first would get it sent
    while message 7 of a slower transaction was not yet visible. SQLite has one writer at a time.
    """
    if connection.dialect.name != "postgresql":
        return
    key = zlib.crc32(channel.encode()) - 2**31  # a signed 32-bit key
    connection.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": CHANNEL_LOCK_SPACE, "key": key})


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision (runs at start-up)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine):
        if engine.dialect.name == "sqlite":
            _use_wal(engine)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # replicas starting together migrate one at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(872341)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """SQLite on a file: processes starting together (gunicorn workers) migrate one at a time.

    Switching a file to WAL takes a lock of its own, and two processes asking for it at once can be refused
    at once ("database is locked", whatever the busy timeout): an flock on `<db>-migrate.lock` takes turns.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or "mode=memory" in str(engine.url) or fcntl is None:
        yield
        return
    with open(f"{Path(database).resolve()}-migrate.lock", "a") as lock:  # closing it releases the flock
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _use_wal(engine: Engine) -> None:
    """WAL once, under the migration lock; a file that has it keeps it, and its connections leave it alone."""
    raw = engine.raw_connection()  # not engine.connect(): its BEGIN IMMEDIATE would forbid the switch
    try:
        driver = raw.driver_connection
        if driver.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
            driver.execute("PRAGMA journal_mode=WAL")
    finally:
        raw.close()


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        conn.rollback()
