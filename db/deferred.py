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

A unit of a trusting transaction runs as a block (`open_block`): if it fails before anything of it
reached the database (it sent only reads, and none of its rows were written before one), `drop_block`
takes it back by dropping its rows, without a savepoint and without running the others again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, Table, Update, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ReleaseSavepointClause, RollbackToSavepointClause

from db.levels import levels, track_levels

_KEY = "warroom.deferred_rows"
_BLOCK = "warroom.block"
_KEPT_ROWS = "warroom_kept_rows"  # an execution option: write_deferred's own INSERTs
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
    block: _Block | None = connection.info.get(_BLOCK)
    if block is not None:
        block.wrote = block.wrote or len(kept) != block.depth or len(kept[-1]) > block.rows
        block.rows = 0
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
                connection.execute(_insert(table), batch if len(batch) > 1 else batch[0],
                                   execution_options={_KEPT_ROWS: True})
                start = i


@dataclass
class _Block:
    depth: int  # the savepoint level it runs at
    rows: int  # where its own kept rows begin in that level
    wrote: bool = False  # the database holds something of it


def open_block(connection: Connection) -> None:
    """Watch what the next block of work writes (db/group_commit.py: a unit of a shared transaction run
    without savepoints), so that `drop_block` can take it back if the database holds nothing of it."""
    kept: list[Level] = levels(connection, _KEY, list)
    connection.info[_BLOCK] = _Block(depth=len(kept), rows=len(kept[-1]))


def drop_block(connection: Connection) -> bool:
    """Take back the block opened last by dropping the rows it kept, if nothing of it reached the database:
    no statement it sent could write (only SELECTs and READS_NO_TABLE statements), and none of its rows
    were written before a read. False (nothing dropped) otherwise."""
    block: _Block | None = connection.info.pop(_BLOCK, None)
    kept: list[Level] = levels(connection, _KEY, list)
    if block is None or block.wrote or len(kept) != block.depth:
        return False
    del kept[-1][block.rows:]
    return True


def close_block(connection: Connection) -> None:
    connection.info.pop(_BLOCK, None)


def waiting_tables(connection: Connection) -> set[str]:
    return {table.name for level in levels(connection, _KEY, list) for table, _ in level}


@cache
def _insert(table: Table) -> Insert:
    return table.insert()


def track_deferred_rows(engine: Engine) -> None:
    track_levels(engine, _KEY, list, list.extend)

    @event.listens_for(engine, "before_execute")
    def _before(conn: Connection, clause: Any, _multiparams: Any, _params: Any, options: Any) -> None:
        block: _Block | None = conn.info.get(_BLOCK)
        if block is not None and not (isinstance(clause, Select) or options.get(READS_NO_TABLE)
                                      or options.get(_KEPT_ROWS)):
            block.wrote = True  # (rows kept are the block's only if they are its own: see write_deferred)
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
