"""The writers of one process take turns in the order they came (db/session.py `transaction()`).

SQLite has one writer at a time. Its busy handler makes the others sleep in growing steps and retry,
so a writer that writes again at once (the scheduler running timer after timer) keeps winning, and a
command that came meanwhile waits for the whole pass (docs/performance.md; tests/test_timer_pass.py).
Here the writer that finishes hands the turn to the one that has waited longest. On PostgreSQL the same
turns keep the process's threads from queueing on the launch row's lock while the GIL holds its holder
(docs/performance.md); replicas, other processes, still write side by side. Re-entrant: a thread that is writing may open another transaction.
"""

from __future__ import annotations

import threading
from collections import deque


class Turns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[tuple[int, threading.Event]] = deque()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> Turns:
        me = threading.get_ident()
        with self._lock:
            if self._owner == me or (self._owner is None and not self._waiting):
                self._owner, self._depth = me, self._depth + 1
                return self
            turn = threading.Event()
            self._waiting.append((me, turn))
        turn.wait()  # __exit__ made us the owner before setting it
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth:
                return
            if self._waiting:
                self._owner, turn = self._waiting.popleft()
                self._depth = 1
                turn.set()
            else:
                self._owner = None
