"""Group commit (db/group_commit.py): commands that arrive while a transaction is being written share
the next one. Through the real stack: each keeps its own outcome (stored, refused, malformed, replayed,
failed), what one changes the next one sees, a failed commit is retried for all; and, directly, the
hand-off between leaders and the channel locks held across savepoints on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from db.group_commit import GroupCommit, Undo
from db.models import AuditEvent, OutboxMessage, SeenRequest
from db.session import hold_channel, make_engine, migrate, write_lock
from tests.harness import Harness, sign


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Queued:
    """Signed requests sent one at a time while the process's writer is held, each queued (in order)
    before the next is sent; released, they are written together."""

    def __init__(self, bot: Harness) -> None:
        self.bot = bot
        self.writes: GroupCommit = bot.runtime.dispatcher.writes
        # the first request of a process also prunes old replay keys, in a transaction of its own
        assert bot.slash("/incident", "list").status_code == 200
        self.threads: list[threading.Thread] = []
        self.responses: list[httpx.Response | None] = []

    def send(self, body: str, signed: dict[str, str] | None = None) -> int:
        """`signed`: the signature headers of an earlier send (a replay is the same request, headers and all)."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", **(signed or sign(body))}
        index = len(self.responses)
        self.responses.append(None)
        before = self.writes.waiting

        def go() -> None:
            with httpx.Client(base_url=self.bot.url, timeout=30) as client:
                self.responses[index] = client.post("/slack/events", content=body.encode(), headers=headers)

        thread = threading.Thread(target=go)
        thread.start()
        self.threads.append(thread)
        if index == 0:  # the first leads: it is waiting for the writer with nothing else queued
            wait_for(lambda: self.writes.writing and self.writes.waiting == 0)
        else:
            wait_for(lambda: self.writes.waiting == before + 1)
        return index

    def finish(self) -> list[httpx.Response]:
        for thread in self.threads:
            thread.join(timeout=30)
        assert all(r is not None for r in self.responses)
        return self.responses  # type: ignore[return-value]


def slash_form(command: str, text: str, user: str = "U0COMMANDER", trigger: str = "t") -> str:
    return urlencode({
        "token": "legacy", "team_id": "T0STANDIN", "team_domain": "standin", "channel_id": "C0WARROOM",
        "channel_name": "launch-war-room", "user_id": user, "user_name": user.lower(), "command": command,
        "text": text, "api_app_id": "A0WARROOM", "is_enterprise_install": "false",
        "response_url": "http://127.0.0.1:9/respond/x", "trigger_id": f"trigger.{trigger}",
    })


def test_commands_written_together_keep_their_own_outcomes(bot: Harness) -> None:
    writes = bot.runtime.dispatcher.writes
    first = bot.slash("/incident", "sev2 search is slow")
    assert "Declared INC-1" in first.json()["text"]
    queued = Queued(bot)
    transactions = writes.transactions
    declaration = slash_form("/incident", "sev1 checkout 500s", trigger="dup")
    with write_lock(bot.runtime.engine):
        queued.send(slash_form("/incident", "sev3 leads alone", trigger="a"))
        role = queued.send(slash_form("/role", "commander <@U0NEW>", trigger="b"))
        signed = sign(declaration)
        declared = queued.send(declaration, signed)
        replayed = queued.send(declaration, signed)  # the same signed request again: one effect
        malformed = queued.send(slash_form("/incident", "sev9 nope", trigger="c"))
        refused = queued.send(slash_form("/incident", "resolve INC-1", user="U0CX", trigger="d"))
        shouted = queued.send(slash_form("/incident", "sev4 <!channel> look at this", user="U0CX", trigger="e"))
        assert writes.waiting == 6
    responses = queued.finish()
    assert writes.transactions == transactions + 2  # the leader alone, then the six others in one
    texts = {i: r.text for i, r in enumerate(responses) if r.status_code == 200}
    assert "Declared INC-2" in texts[0]
    assert "commander" in texts[role]
    assert "Declared INC-3" in texts[declared]
    assert responses[replayed].status_code == 401, responses[replayed].text
    assert "is not a severity" in texts[malformed]
    assert "Only the owner of INC-1" in texts[refused]
    assert "Declared INC-4" in texts[shouted]

    incidents = {i.number: i for i in bot.incidents()}
    assert sorted(incidents) == [1, 2, 3, 4]
    assert incidents[1].status == "open"  # the refused resolve changed nothing
    assert incidents[3].owner == "U0NEW"  # the role change queued before it, in the same transaction
    assert incidents[2].owner == "U0COMMANDER"
    assert len(bot.events("command.refused")) == 1
    assert len(bot.events("incident.declared")) == 4
    bot.deliver()
    war_room = [p["text"] for p in bot.posts("C0WARROOM")]
    assert sum(t.startswith("INCIDENT") for t in war_room) == 4
    assert not any("<!channel>" in t for t in war_room)
    assert any("&lt;!channel&gt; look at this" in t for t in war_room)


def test_a_failed_commit_is_retried_for_every_command_of_the_transaction(bot: Harness) -> None:
    engine = bot.runtime.engine
    failures = {"left": 1}

    def fail_once(conn: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("COMMIT", {}, Exception("the server went away"))

    queued = Queued(bot)
    event.listen(engine, "commit", fail_once)
    try:
        with write_lock(engine):
            for n in range(4):
                queued.send(slash_form("/incident", f"sev2 failure {n}", trigger=f"f{n}"))
        responses = queued.finish()
    finally:
        event.remove(engine, "commit", fail_once)
    assert failures["left"] == 0
    assert all(r.status_code == 200 and "Declared INC-" in r.text for r in responses), [r.text for r in responses]
    numbers = sorted(i.number for i in bot.incidents())
    assert numbers == [1, 2, 3, 4]  # each stored once: the failed transaction left nothing behind
    with bot.session() as s:
        assert len(s.exec(select(SeenRequest)).all()) == 5  # with Queued's first request
        assert len(s.exec(select(OutboxMessage).where(OutboxMessage.kind == "incident.notification")).all()) == 4


def test_a_command_that_fails_is_undone_alone(bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    import commands.incident as incident_module

    real = incident_module.declare

    def broken_for_one(ctx: Any, decl: Any) -> Any:
        incident = real(ctx, decl)  # its rows are written, then it fails
        if "explodes" in decl.summary:
            raise RuntimeError("a bug")
        return incident

    monkeypatch.setattr(incident_module, "declare", broken_for_one)
    queued = Queued(bot)
    with write_lock(bot.runtime.engine):
        queued.send(slash_form("/incident", "sev2 fine one", trigger="g1"))
        queued.send(slash_form("/incident", "sev2 explodes", trigger="g2"))
        queued.send(slash_form("/incident", "sev2 fine two", trigger="g3"))
    responses = queued.finish()
    assert "Declared INC-1" in responses[0].text
    assert "warroom hit an error" in responses[1].text.lower() or responses[1].status_code == 500
    assert "Declared INC-2" in responses[2].text  # the failed one's number was undone with it
    assert [i.summary for i in sorted(bot.incidents(), key=lambda i: i.number)] == ["fine one", "fine two"]
    with bot.session() as s:
        kinds = [e.kind for e in s.exec(select(AuditEvent).where(AuditEvent.kind == "incident.declared")).all()]
    assert len(kinds) == 2


def test_a_typo_or_a_refusal_is_undone_in_place_without_running_the_others_again(bot: Harness) -> None:
    """Commands check before they write: a malformed or refused one fails before any write, so the shared
    transaction drops what it kept and goes on; the others are written once (no second run, no savepoint)."""
    assert "Declared INC-1" in bot.slash("/incident", "sev2 search is slow").json()["text"]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append(statement.split("(")[0].strip())

    queued = Queued(bot)
    transactions = bot.runtime.dispatcher.writes.transactions
    event.listen(bot.runtime.engine, "before_cursor_execute", seen)
    try:
        with write_lock(bot.runtime.engine):
            queued.send(slash_form("/incident", "sev3 leads alone", trigger="a"))
            first = queued.send(slash_form("/incident", "sev1 checkout 500s", trigger="b"))
            malformed = queued.send(slash_form("/incident", "ack", trigger="c"))
            refused = queued.send(slash_form("/incident", "resolve INC-1", user="U0CX", trigger="d"))
            last = queued.send(slash_form("/incident", "sev2 payments slow", trigger="e"))
        responses = queued.finish()
    finally:
        event.remove(bot.runtime.engine, "before_cursor_execute", seen)
    assert bot.runtime.dispatcher.writes.transactions == transactions + 2
    assert "Declared INC-3" in responses[first].text and "Declared INC-4" in responses[last].text
    assert "needs an incident id" in responses[malformed].text
    assert "Only the owner of INC-1" in responses[refused].text
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]  # never run again one by one
    assert statements.count("INSERT INTO incident") == 3  # each declaration written once
    assert len(bot.events("command.refused")) == 1  # the refusal is on the audit trail
    with bot.session() as s:
        keys = {k.key for k in s.exec(select(SeenRequest)).all()}
    assert not any("trigger.c" in k for k in keys)  # the typo's request left nothing behind


# -- GroupCommit on its own ------------------------------------------------------------------------

@pytest.fixture
def engine(database_url: str) -> Any:
    engine = make_engine(database_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body VARCHAR(40) NOT NULL)"))
    yield engine
    engine.dispose()


def run_together(engine: Any, writes: GroupCommit, units: list[Callable[[Session, Undo], Any]]) -> list[Any]:
    """Start the units at once while the writer is held, so all but the first queue behind it. Returns
    each caller's outcome: what its unit returned, or the exception the caller got."""
    outcomes: list[Any] = [None] * len(units)

    def call(i: int) -> None:
        try:
            outcomes[i] = writes.run(units[i])
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(units))]
    with write_lock(engine):
        threads[0].start()  # it leads, alone, and waits for the writer
        wait_for(lambda: writes.writing and writes.waiting == 0)
        for t in threads[1:]:
            t.start()
        wait_for(lambda: writes.waiting == len(units) - 1)
    for t in threads:
        t.join(timeout=30)
    return outcomes


def notes(engine: Any) -> list[str]:
    with Session(engine) as s:
        return [row[0] for row in s.execute(text("SELECT body FROM note ORDER BY id"))]


def test_every_caller_gets_its_own_result_and_no_transaction_exceeds_its_size(engine: Any) -> None:
    writes = GroupCommit(engine, max_units=4)

    def work(n: int) -> Callable[[Session, Undo], int]:
        def unit(session: Session, undo: Undo) -> int:
            with undo():
                session.execute(text("INSERT INTO note (id, body) VALUES (:id, :body)"), {"id": n, "body": f"n{n}"})
                if n % 7 == 3:
                    raise ValueError(f"unit {n} fails")
            return n * 10
        return unit

    outcomes = run_together(engine, writes, [work(n) for n in range(20)])
    assert [str(o) if isinstance(o, ValueError) else o for o in outcomes] == \
        [f"unit {n} fails" if n % 7 == 3 else n * 10 for n in range(20)]
    assert sorted(notes(engine), key=lambda b: int(b[1:])) == [f"n{n}" for n in range(20) if n % 7 != 3]
    assert writes.units == 20 and writes.transactions >= 5  # at most 4 to a transaction
    assert not writes.writing and writes.waiting == 0  # leadership was handed on and given up


def test_channel_locks_are_taken_once_per_transaction_and_again_after_a_rollback(engine: Any) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("advisory channel locks exist on PostgreSQL only")
    locks: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "pg_advisory_xact_lock" in statement:
            locks.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    writes = GroupCommit(engine)
    outcome: list[Any] = []

    def unit(fails: bool) -> Callable[[Session, Undo], None]:
        def run(session: Session, undo: Undo) -> None:
            try:
                with undo():
                    hold_channel(session.connection(), "C0WARROOM")
                    if fails:  # after a write: the transaction runs again, each unit in a savepoint
                        session.connection().execute(text("INSERT INTO note (id, body) VALUES (99, 'doomed')"))
                        raise ValueError("undone")
                outcome.append(len(locks))
            except ValueError:
                outcome.append("undone")
        return run

    def batch(*fails: bool) -> None:
        """The first unit leads alone (it waits for the writer we hold); the rest queue, in order."""
        threads: list[threading.Thread] = []
        with write_lock(engine):
            for i, fails_ in enumerate(fails):
                threads.append(threading.Thread(target=writes.run, args=(unit(fails_),)))
                threads[-1].start()
                if i == 0:
                    wait_for(lambda: writes.writing and writes.waiting == 0)
                else:
                    wait_for(lambda i=i: writes.waiting == i)  # type: ignore[misc]
        for t in threads:
            t.join(timeout=30)

    # the first leads alone (lock 1). The other three are tried together without savepoints: the first of
    # them takes the lock (2) and fails, so that transaction is rolled back and they run again, each in a
    # savepoint: taken (3) and undone; taken again (4) and released; still held, not taken again
    batch(False, True, False, False)
    assert outcome == [1, "undone", 4, 4]
    assert len(locks) == 4
    outcome.clear()
    batch(False)  # a new transaction takes it again
    assert outcome == [5]


def test_a_row_that_fails_only_at_commit_fails_its_own_command_alone(engine: Any) -> None:
    """Trusting, rows are written at commit: one bad row fails the commit; run again with savepoints, its
    unit's rows are written before its savepoint ends, so that unit fails alone."""
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from db.deferred import defer_row

    table = Table("note", MetaData(), Column("id", Integer, primary_key=True), Column("body", String(40)))
    writes = GroupCommit(engine)

    def unit(n: int) -> Callable[[Session, Undo], int]:
        def run(session: Session, undo: Undo) -> int:
            with undo():
                defer_row(session.connection(), table, {"id": n, "body": None if n == 2 else f"n{n}"})
            return n
        return run

    outcomes = run_together(engine, writes, [unit(n) for n in range(5)])
    assert [type(o).__name__ if isinstance(o, Exception) else o for o in outcomes] == \
        [0, 1, "IntegrityError", 3, 4]  # body is NOT NULL
    assert sorted(notes(engine)) == ["n0", "n1", "n3", "n4"]


def test_a_unit_that_changed_an_object_then_failed_is_undone_alone(engine: Any) -> None:
    """Trusting, a unit that changed a loaded object and then raised has something the session would
    flush: the transaction runs again with savepoints, and only that unit's change is undone."""
    from db.models import Launch

    with Session(engine) as s:
        s.add(Launch(name="before", war_room="C0GC", created_at=datetime.now(UTC)))
        s.commit()
    writes = GroupCommit(engine)

    def unit(n: int) -> Callable[[Session, Undo], int]:
        def run(session: Session, undo: Undo) -> int:
            with undo():
                if n == 1:
                    launch = session.exec(select(Launch).where(Launch.war_room == "C0GC")).one()
                    launch.name = "changed by a unit that fails"
                    raise ValueError("after changing the launch")
                session.connection().execute(text("INSERT INTO note (id, body) VALUES (:n, :b)"), {"n": n, "b": f"n{n}"})
            return n
        return run

    outcomes = run_together(engine, writes, [unit(n) for n in range(3)])
    assert [type(o).__name__ if isinstance(o, Exception) else o for o in outcomes] == [0, "ValueError", 2]
    with Session(engine) as s:
        assert s.exec(select(Launch.name).where(Launch.war_room == "C0GC")).one() == "before"
    assert notes(engine) == ["n0", "n2"]
