"""State a connection keeps level by level along its transaction's savepoints, as PostgreSQL keeps
locks: what a savepoint rolled back took is dropped; what a released one took passes to the level
around it; a new transaction (or a rollback) starts afresh. Used for the channel locks a transaction
holds (db/session.py hold_channel) and the rows it has yet to write (db/deferred.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")


def levels(connection: Connection, key: str, new: Callable[[], T]) -> list[T]:
    """The connection's levels under `key`, outermost first (the last is the current savepoint's)."""
    return connection.info.setdefault(key, [new()])  # type: ignore[no-any-return]


def track_levels(engine: Engine, key: str, new: Callable[[], T], merge: Callable[[T, T], Any]) -> None:
    """Keep `key`'s levels on every connection of the engine; `merge(outer, inner)` when a savepoint is released."""

    @event.listens_for(engine, "begin")
    @event.listens_for(engine, "rollback")
    def _afresh(conn: Connection) -> None:
        with contextlib.suppress(Exception):  # a connection the server dropped has no info to reset
            conn.info[key] = [new()]

    @event.listens_for(engine, "savepoint")
    def _savepoint(conn: Connection, _name: str) -> None:
        levels(conn, key, new).append(new())

    @event.listens_for(engine, "release_savepoint")
    def _release(conn: Connection, _name: str, _context: Any) -> None:
        kept = levels(conn, key, new)
        if len(kept) > 1:
            inner = kept.pop()
            merge(kept[-1], inner)

    @event.listens_for(engine, "rollback_savepoint")
    def _rollback_savepoint(conn: Connection, _name: str, _context: Any) -> None:
        kept = levels(conn, key, new)
        if len(kept) > 1:
            kept.pop()
