"""Group commit: commands that arrive while a transaction is being written share the next one.

A process has one writer at a time (db/session.py WriteLock). Under a burst (a launch breaking,
everyone declaring and clicking at once) each command used to wait its turn, then pay for its
own BEGIN, its own lookups and its own COMMIT (on PostgreSQL a WAL flush). Here the first caller
leads: it takes every unit of work queued behind it, runs them one after another in ONE
transaction, commits once and hands each caller its own outcome. While it writes, new arrivals
queue; when it is done, the first of them leads the next transaction. Nobody waits on a timer:
with one caller a transaction holds one unit, exactly as before.

Several units are first tried trusting: no savepoints, so the rows they defer (audit events,
messages, timers) are written at commit, one statement per table for all of them (db/deferred.py).
A unit that fails there before it sent any write (a typo, a refusal: commands check before they
write) is undone in place: the rows it kept are dropped, and the others go on. If a unit fails after
it wrote, that transaction is rolled back unseen and the batch runs again with a SAVEPOINT per unit:
a unit that fails is undone alone, the others keep theirs; that costs its batch one rerun. So a
unit's work writes only inside `undo()` blocks, and does nothing outside the database (it may run
twice).

If the commit itself fails (a dropped connection, a serialization failure), every unit of the
transaction gets that error, and its caller decides whether to try again; nothing of it is stored.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from db.deferred import close_block, drop_block, open_block, write_deferred
from db.session import forget_reads, transaction

MAX_UNITS = 32  # per transaction: bounds how long the last unit of a transaction waits for its commit


class Undo(Protocol):
    """Within a unit: `with undo():` runs a block whose writes are undone alone if it raises."""

    def __call__(self) -> contextlib.AbstractContextManager[Any]: ...


Work = Callable[[Session, Undo], Any]


@dataclass(eq=False)
class _Unit:
    work: Work
    wake: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    def __init__(self, engine: Engine, committed: Callable[[], None] = lambda: None,
                 max_units: int = MAX_UNITS) -> None:
        self.engine = engine
        self.committed = committed  # after each successful commit (wakes the outbox, the scheduler)
        self.max_units = max_units
        self._lock = threading.Lock()
        self._queue: list[_Unit] = []
        self._leading = False
        self.transactions = 0  # commits made (for tests and benches: units / transactions = sharing)
        self.units = 0

    @property
    def waiting(self) -> int:
        """Units queued for the next transaction (not the one being written)."""
        with self._lock:
            return len(self._queue)

    @property
    def writing(self) -> bool:
        with self._lock:
            return self._leading

    def run(self, work: Work) -> Any:
        """Run `work(session, undo)` in a shared transaction; return what it returned once committed,
        or raise what it raised (its writes undone) or what the commit raised."""
        unit = _Unit(work)
        with self._lock:
            self._queue.append(unit)
            if not self._leading:
                self._leading = unit.leads = True
        if not unit.leads:
            unit.wake.wait()  # done by a leader, or made the next leader
        if not unit.done:
            self._lead()
        if unit.error is not None:
            raise unit.error
        return unit.result

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:self.max_units], self._queue[self.max_units:]
        try:
            self._write(batch)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.leads = True
                    successor.wake.set()
                else:
                    self._leading = False
            for unit in batch:
                unit.done = True
                unit.wake.set()

    def _write(self, batch: list[_Unit]) -> None:
        """Trusting first: every unit without a savepoint (their rows written together, db/deferred.py).
        If one fails, that transaction is rolled back and the batch runs again, each unit in a savepoint."""
        if len(batch) > 1 and self._commit(batch, trusting=True):
            return
        self._commit(batch, trusting=False)

    def _commit(self, batch: list[_Unit], *, trusting: bool) -> bool:
        """One transaction for the batch. False when a unit failed in a trusting one (nothing stored)."""
        try:
            with transaction(self.engine) as session:
                undo = _trusting(session) if trusting else _whole(session) if len(batch) == 1 else _savepoint(session)
                for unit in batch:
                    try:
                        unit.result, unit.error = unit.work(session, undo), None
                    except Exception as exc:
                        if trusting:
                            raise _Undone() from exc
                        unit.error = exc  # its writes are undone; the others' stand
        except _Undone:
            return False
        except BaseException as exc:  # the commit (or the transaction's start) failed: nothing was stored
            if trusting and isinstance(exc, Exception):
                return False  # perhaps because of one unit's rows, written only then: again, one by one
            for unit in batch:
                unit.result, unit.error = None, exc
            if not isinstance(exc, Exception):
                raise
            return True
        self.transactions += 1
        self.units += len(batch)
        self.committed()
        return True


class _Undone(BaseException):
    """A unit of a trusting transaction failed: a BaseException, so the unit's own handlers (a command
    error becoming a reply) do not catch it; the whole transaction is rolled back and run again."""


def _trusting(session: Session) -> Undo:
    """No savepoint. A block that raises before it sent any write, with no change to the session's
    objects waiting to be flushed, is undone by dropping the rows it kept (db/deferred.py) and its error
    goes to its unit; one that raises after a write (or with a database error: the transaction may be
    unusable) makes the whole transaction roll back and run again with savepoints."""
    @contextlib.contextmanager
    def undo() -> Iterator[None]:
        _flush_changes(session)  # what earlier units changed is theirs, not this block's
        connection = session.connection()
        open_block(connection)
        try:
            yield
        except Exception as exc:
            if isinstance(exc, SQLAlchemyError) or _changes_waiting(session) or not drop_block(connection):
                raise _Undone() from exc
            raise
        finally:
            close_block(connection)
    return undo


def _changes_waiting(session: Session) -> bool:
    return bool(session.new or session.dirty or session.deleted)


def _flush_changes(session: Session) -> None:
    if _changes_waiting(session):
        session.flush()


def _savepoint(session: Session) -> Undo:
    @contextlib.contextmanager
    def undo() -> Iterator[None]:
        try:
            with session.begin_nested():
                yield
                write_deferred(session.connection())  # its rows fail (if they do) inside its savepoint
        except BaseException:
            forget_reads(session)  # what the transaction read may have been read (or changed) by what was undone
            raise
    return undo


def _whole(session: Session) -> Undo:
    """Alone in its transaction, a unit is undone by rolling the transaction back (the session begins
    a new one on its next statement, still inside the same turn to write): no savepoint to pay for.
    Its rows are written before the block ends (as in a savepoint), so a bad row fails the unit, not
    the commit."""
    @contextlib.contextmanager
    def undo() -> Iterator[None]:
        try:
            yield
            write_deferred(session.connection())
        except BaseException:
            session.rollback()
            raise
    return undo
