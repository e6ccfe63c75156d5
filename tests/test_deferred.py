"""Deferred rows (db/deferred.py): written together, before anything could read or miss them, in call
order, and only as far as the savepoints around them were kept. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from commands.context import defer, insert_row
from db.deferred import drop_block, open_block
from db.models import AuditEvent, Launch, Timer
from db.session import make_engine, migrate, reading, transaction, write_lock
from tests.harness import Harness
from tests.test_group_commit import Queued, slash_form

NOW = datetime(2025, 10, 16, 17, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    with transaction(engine) as session:
        session.add(Launch(name="deferred", war_room="C0DEF", timezone="UTC", created_at=NOW))
    yield engine
    engine.dispose()


def note(session: Session, kind: str, *, now: bool = False) -> None:
    launch_id = session.exec(select(Launch.id)).first()
    row = {"launch_id": launch_id, "kind": kind, "actor": "U0A", "ts": NOW, "payload": {}}
    if now:
        insert_row(session, AuditEvent, **row)
    else:
        defer(session, AuditEvent, **row)


def kinds(engine: Engine) -> list[str]:
    with reading(engine) as s:
        return [e.kind for e in s.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]


def test_rows_are_written_at_commit_and_read_back_before_a_query(engine: Engine) -> None:
    with transaction(engine) as session:
        note(session, "a")
        note(session, "b")
        assert kinds(engine) == []  # not yet written (another connection sees nothing: not even uncommitted)
        seen = [e.kind for e in session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]
        assert seen == ["a", "b"]  # a read in the transaction sees them
        note(session, "c")
    assert kinds(engine) == ["a", "b", "c"]


def test_ids_keep_call_order_around_an_immediate_insert(engine: Engine) -> None:
    with transaction(engine) as session:
        note(session, "first")
        note(session, "second", now=True)  # an INSERT into the same table writes what waits first
        note(session, "third")
    assert kinds(engine) == ["first", "second", "third"]


def test_savepoints_keep_or_drop_their_own_rows(engine: Engine) -> None:
    with transaction(engine) as session:
        note(session, "outer before")
        try:
            with session.begin_nested():
                note(session, "undone")
                raise ValueError("undo")
        except ValueError:
            pass
        with session.begin_nested():
            note(session, "kept")
        note(session, "outer after")
    assert kinds(engine) == ["outer before", "kept", "outer after"]


def test_a_rollback_drops_them(engine: Engine) -> None:
    with pytest.raises(RuntimeError), transaction(engine) as session:
        note(session, "never")
        raise RuntimeError("rolled back")
    with transaction(engine) as session:
        note(session, "next")
    assert kinds(engine) == ["next"]


def test_commands_written_together_write_each_table_once(bot: Harness) -> None:
    """Five declarations in one trusting transaction: their audit events, notifications, timers and
    activity go to the database in one statement per table."""
    inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("INSERT INTO"):
            inserts.append(statement.split()[2])

    queued = Queued(bot)
    event.listen(bot.runtime.engine, "before_cursor_execute", count)
    try:
        with write_lock(bot.runtime.engine):
            for n in range(6):
                queued.send(slash_form("/incident", f"sev1 together {n}", trigger=f"t{n}"))
        responses = queued.finish()
    finally:
        event.remove(bot.runtime.engine, "before_cursor_execute", count)
    assert all("Declared INC-" in r.text for r in responses)
    # the leader alone (one statement per table), then the five others together (one per table)
    for table in ("auditevent", "outboxmessage", "timer", "activity"):
        assert inserts.count(table) == 2, (table, inserts)
    # request keys are kept too, each written last in its command: the leader's, then the five others' together
    assert inserts.count("incident") == 6 and inserts.count("seenrequest") == 2
    assert len(bot.events("incident.declared")) == 6
    with bot.session() as s:
        assert len(s.exec(select(Timer).where(Timer.kind.in_(["escalation", "plan_check"]))).all()) == 12  # type: ignore[attr-defined]


def test_a_block_is_dropped_only_while_nothing_of_it_reached_the_database(engine: Engine) -> None:
    """open_block / drop_block (a unit of a shared transaction that fails its checks): its kept rows are
    dropped if it sent no write and none of its rows were written before a read."""
    with transaction(engine) as session:
        launch_id = session.exec(select(Launch.id)).one()
        connection = session.connection()

        def keep(kind: str) -> None:
            defer(session, AuditEvent, launch_id=launch_id, kind=kind, actor="U0A", ts=NOW, payload={})

        keep("kept before")
        open_block(connection)
        session.exec(select(Launch.id)).one()  # a read: writes the rows kept before the block, none of its own
        keep("dropped")
        assert drop_block(connection)

        open_block(connection)
        keep("written by a read")
        session.exec(select(Launch.id)).one()
        assert not drop_block(connection)

        open_block(connection)
        insert_row(session, AuditEvent, launch_id=launch_id, kind="sent at once", actor="U0A", ts=NOW, payload={})
        keep("after a write")
        assert not drop_block(connection)
    assert kinds(engine) == ["kept before", "written by a read", "sent at once", "after a write"]
