"""Rows written as late as they can be, many at a time.

Most of what a command writes is written once and never read back by it: audit events, outbox
messages, timers, activity. `defer_row` keeps such a row with the connection instead of sending an
INSERT at once, and the rows kept are written together, one executemany per table (one round trip on
PostgreSQL, psycopg's pipeline), just before anything could see them or miss them:

- before any statement other than an INSERT or UPDATE of a table that has no rows waiting (a SELECT,
  a DELETE, text SQL, an INSERT into the same table: so read-your-writes holds and ids keep call order),
  unless it is marked READS_NO_TABLE (the channel lock);
- before a SAVEPOINT (rows kept before it belong to the level around it, which its rollback must not
  take back);
- at commit.

Commands sharing a trusting transaction (db/group_commit.py: no savepoints) thus write their audit
events, messages and timers in one statement per table. Within a savepoint, rows are kept for its own
level: rolled back, it drops them; released, it hands them to the level around it. A rollback drops all.
A deferred row's id is not known to the caller: a row whose id is needed (to point at it) is written
with an immediate INSERT (commands/context.py insert_row).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Insert, Table, Update, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ReleaseSavepointClause, RollbackToSavepointClause

from db.levels import levels, track_levels

_KEY = "warroom.deferred_rows"
READS_NO_TABLE = "warroom_reads_no_table"  # an execution option: this statement cannot see rows (a lock)
_SAVEPOINT_ENDS = (ReleaseSavepointClause, RollbackToSavepointClause)
Level = list[tuple[Table, dict[str, Any]]]


def defer_row(connection: Connection, table: Table, values: dict[str, Any]) -> None:
    levels(connection, _KEY, list)[-1].append((table, values))


def write_deferred(connection: Connection) -> None:
    """Write every row kept on this connection: per table, in call order, one executemany per run of rows
    that set the same columns."""
    kept: list[Level] = levels(connection, _KEY, list)
    if not any(kept):
        return
    rows = [row for level in kept for row in level]
    for level in kept:
        level.clear()
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for table, values in rows:
        by_table.setdefault(table, []).append(values)
    for table, table_rows in by_table.items():
        start = 0
        for i in range(1, len(table_rows) + 1):
            if i == len(table_rows) or table_rows[i].keys() != table_rows[start].keys():
                batch = table_rows[start:i]
                connection.execute(_insert(table), batch if len(batch) > 1 else batch[0])
                start = i


def waiting_tables(connection: Connection) -> set[str]:
    return {table.name for level in levels(connection, _KEY, list) for table, _ in level}


@cache
def _insert(table: Table) -> Insert:
    return table.insert()


def track_deferred_rows(engine: Engine) -> None:
    track_levels(engine, _KEY, list, list.extend)

    @event.listens_for(engine, "before_execute")
    def _before(conn: Connection, clause: Any, _multiparams: Any, _params: Any, options: Any) -> None:
        kept = conn.info.get(_KEY)
        if not kept or not any(kept) or isinstance(clause, _SAVEPOINT_ENDS) or options.get(READS_NO_TABLE):
            return  # (before a SAVEPOINT they are written: a savepoint rolled back must not take them along)
        if isinstance(clause, (Insert, Update)) and isinstance(clause.table, Table) \
                and clause.table.name not in waiting_tables(conn):
            return  # another table's write cannot read the rows kept
        write_deferred(conn)

    @event.listens_for(engine, "commit")
    def _commit(conn: Connection) -> None:
        write_deferred(conn)
