"""db/turns.py: SQLite writers of one process take turns in the order they came."""

from __future__ import annotations

import threading
import time

from db.turns import Turns


def test_writers_get_the_turn_in_the_order_they_came() -> None:
    turns = Turns()
    order: list[int] = []
    turns.__enter__()  # held, while five writers queue one after another

    def writer(n: int) -> None:
        with turns:
            order.append(n)

    threads = []
    for n in range(5):
        thread = threading.Thread(target=writer, args=(n,))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while len(turns._waiting) <= n and time.monotonic() < deadline:  # queued before the next one starts
            time.sleep(0.001)
    turns.__exit__(None, None, None)
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_a_writer_that_writes_again_at_once_waits_behind_one_already_waiting() -> None:
    turns = Turns()
    order: list[str] = []
    waiting = threading.Event()

    def command() -> None:
        waiting.set()
        with turns:
            order.append("command")

    with turns:
        order.append("timer 1")
        thread = threading.Thread(target=command)
        thread.start()
        waiting.wait(5)
        deadline = time.monotonic() + 5
        while not turns._waiting and time.monotonic() < deadline:
            time.sleep(0.001)
    with turns:  # the scheduler's next timer, at once
        order.append("timer 2")
    thread.join(5)
    assert order == ["timer 1", "command", "timer 2"]


def test_a_thread_already_writing_may_open_another_transaction() -> None:
    turns = Turns()
    with turns, turns:
        pass
    acquired = threading.Event()
    thread = threading.Thread(target=lambda: (turns.__enter__(), acquired.set(), turns.__exit__(None, None, None)))
    thread.start()
    thread.join(5)
    assert acquired.is_set()  # released fully after the nested use
