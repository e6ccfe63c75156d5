"""Retries and races: Slack retrying an event, double clicks, two people at once, two
commands on one incident at once, many writers on SQLite. One consistent result each,
no error shown to whoever lost a race that changed nothing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from db.models import Activity
from tests.faults import assert_exactly_once, settle
from tests.harness import Harness

ERROR_WORDS = ("sorry", "error", "hit an", "try again")


def together(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the calls at the same instant (a barrier), return their responses in order."""
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], httpx.Response]) -> None:
        barrier.wait()
        out[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return out


def no_error_shown(bot: Harness, responses: list[httpx.Response]) -> None:
    for r in responses:
        assert r.status_code == 200, r.text
        assert not any(w in r.text.lower() for w in ERROR_WORDS), r.text
    for reply in bot.responses():
        assert not any(w in str(reply.get("text", "")).lower() for w in ERROR_WORDS), reply


def test_event_retries_with_the_same_event_id_act_once(bot: Harness) -> None:
    event = {"type": "message", "channel": "C0WARROOM", "user": "U0CX", "text": "is checkout down?", "ts": "1.1"}
    first = bot.event(event, event_id="Ev0RETRY")
    retries = together(*(lambda n=n: bot.event(event, event_id="Ev0RETRY", retry_num=n) for n in (1, 2, 3)))
    assert first.status_code == 200 and all(r.status_code == 200 for r in retries)
    other = bot.event(event, event_id="Ev0OTHER")
    assert other.status_code == 200
    with bot.session() as s:
        from sqlmodel import select

        rows = s.exec(select(Activity).where(Activity.source == "message")).all()
    assert len(rows) == 2  # Ev0RETRY once (not four times), Ev0OTHER once


def test_double_click_on_acknowledge_acts_once(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.deliver()
    responses = together(*(lambda: bot.block_actions("incident_ack", "1", user="U0ENG") for _ in range(4)))
    replies = bot.wait_for_responses(4)
    no_error_shown(bot, responses)
    assert len(bot.events("incident.acknowledged")) == 1
    assert bot.incidents()[0].acknowledged_by == "U0ENG"
    texts = sorted(r["text"] for r in replies)
    assert texts.count("You acknowledged INC-1.") == 1 and sum("already acknowledged" in t for t in texts) == 3
    settle(bot)
    assert sum("acknowledged" in p["text"].lower() for p in bot.posts() if p.get("thread_ts")) == 1
    assert_exactly_once(bot)


def test_two_people_acknowledge_at_once_one_wins(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    responses = together(lambda: bot.block_actions("incident_ack", "1", user="U0ENG"),
                         lambda: bot.block_actions("incident_ack", "1", user="U0DEVOPS"))
    replies = bot.wait_for_responses(2)
    no_error_shown(bot, responses)
    winner = bot.incidents()[0].acknowledged_by
    assert winner in ("U0ENG", "U0DEVOPS") and len(bot.events("incident.acknowledged")) == 1
    assert any(f"<@{winner}>" in r["text"] for r in replies if "already" in r["text"])


def test_ack_and_resolve_at_once_end_consistent(bot: Harness) -> None:
    bot.slash("/incident", "sev2 search is slow")
    responses = together(lambda: bot.block_actions("incident_ack", "1", user="U0ENG"),
                         lambda: bot.block_actions("incident_resolve", "1", user="U0COMMANDER"))
    bot.wait_for_responses(2)
    no_error_shown(bot, responses)
    incident = bot.incidents()[0]
    assert incident.status == "resolved"
    acks = bot.events("incident.acknowledged")
    assert len(acks) in (0, 1) and (incident.acknowledged_by is not None) == bool(acks)
    settle(bot)
    final = bot.standin.messages["C0WARROOM"][0]
    assert final["text"].startswith("RESOLVED INCIDENT")  # the last update shows the final state
    assert_exactly_once(bot)


def test_two_commands_changing_one_incident_at_once_both_apply(bot: Harness) -> None:
    bot.slash("/incident", "sev2 payments flaky")
    responses = together(lambda: bot.slash("/incident", "sev INC-1 sev1"),
                         lambda: bot.slash("/incident", "owner INC-1 <@U0DEVOPS|devops>"),
                         lambda: bot.slash("/incident", "update INC-1 failover started"))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "now Critical" in responses[0].json()["text"] and "now owned by" in responses[1].json()["text"]
    incident = bot.incidents()[0]
    assert (incident.severity, incident.owner, incident.last_update_at is not None) == ("sev1", "U0DEVOPS", True)
    settle(bot)
    final = bot.standin.messages["C0WARROOM"][0]["text"]
    assert final.startswith("INCIDENT [Critical]") and "<@U0DEVOPS>" in final  # both changes on the message
    assert_exactly_once(bot)


def test_concurrent_declarations_get_distinct_numbers(bot: Harness) -> None:
    responses = together(*(lambda i=i: bot.slash("/incident", f"sev3 race {i}") for i in range(12)))
    no_error_shown(bot, responses)
    assert sorted(i.number for i in bot.incidents()) == list(range(1, 13))
    settle(bot)
    assert_exactly_once(bot)


def test_many_writers_never_see_database_is_locked(bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """16 clients writing at once while the outbox writes too: SQLite waits (BEGIN IMMEDIATE), never fails."""
    bot.slash("/incident", "sev2 base")
    stop = threading.Event()

    def deliver() -> None:
        while not stop.is_set():
            bot.deliver()

    deliverer = threading.Thread(target=deliver)
    deliverer.start()
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        for i in range(6):
            r = bot.slash("/incident", f"sev3 writer {c}-{i}") if i % 3 else \
                bot.slash("/incident", f"update INC-1 note {c}-{i}")
            with lock:
                responses.append(r)

    with caplog.at_level(logging.WARNING):
        threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stop.set()
        deliverer.join(timeout=30)
    no_error_shown(bot, responses)
    assert len(responses) == 96
    assert not [r for r in caplog.records if "locked" in r.getMessage().lower() or "conflict" in r.getMessage()]
    assert len(bot.incidents()) == 1 + 16 * 4
    settle(bot)
    assert_exactly_once(bot)


def test_a_command_runs_once_under_16_clients(bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command's handler runs once per request (no rerun of a batch, no trusting pass): counted."""
    from commands.registry import SLASH, SlashCommand

    calls: list[str] = []
    decision = SLASH["/decision"]

    def counted(ctx: Any, text: str) -> Any:
        calls.append(text)
        return decision.handler(ctx, text)

    monkeypatch.setitem(SLASH, "/decision", SlashCommand("/decision", counted, decision.usage, decision.summary))
    responses = together(*(lambda i=i: bot.slash("/decision", f"decision {i}") for i in range(16)))
    no_error_shown(bot, responses)
    assert sorted(calls) == sorted(f"decision {i}" for i in range(16))
    assert len(bot.events("decision.recorded")) == 16
