"""Process level: `python -m bot serve` escalates on real time, is SIGKILLed before the next deadline,
restarts, and posts exactly one next ping (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from db.models import AuditEvent, Timer
from db.session import make_engine
from tests.clockwork import wait_for
from tests.processes import BotProcess
from tests.standin import SlackStandin, in_channel

pytestmark = pytest.mark.process


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[BotProcess, SlackStandin, str]]:
    standin = SlackStandin().start()
    config = {
        "launch": {"name": "Process launch", "t0": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()},
        "channels": {"war_room": "C0WARROOM", "broadcast": ["C0OPERATORS"]},
        "roles": {"commander": "U0COMMANDER", "eng_oncall": "U0ENG", "exec": "U0EXEC"},
        "severities": {"sev1": {"ack_within": "3s", "escalate_to": ["commander", "eng_oncall", "exec"]}},
        "heartbeat": {"every": "5s", "for": "1h"},
        "run_of_show": [],
    }
    path = tmp_path / "warroom.yaml"
    path.write_text(yaml.safe_dump(config))
    bot = BotProcess(api_url=standin.api_url, database_url=database_url, config_path=path,
                       extra_env={"LOG_LEVEL": "WARNING"}, log_path=tmp_path / "serve.log")
    try:
        yield bot, standin, database_url
    finally:
        bot.stop()
        standin.stop()


def channel_pings(standin: SlackStandin, user: str, *, exhausted: bool = False) -> list[dict[str, Any]]:
    return [p for p in standin.posts("C0WARROOM") if in_channel(p) and "escalat" in p["text"]
            and "INC-1" in p["text"] and f"<@{user}>" in p["text"] and ("exhausted" in p["text"]) == exhausted]


def next_level_armed(database_url: str) -> bool:
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            armed = s.exec(select(Timer).where(Timer.kind == "escalation", Timer.done_at.is_(None),  # type: ignore[union-attr]
                                               Timer.due_at.is_not(None))).all()  # type: ignore[union-attr]
            return any(t.payload.get("level") == 2 for t in armed)
    finally:
        engine.dispose()


def test_escalation_survives_sigkill_exactly_once(served: tuple[BotProcess, SlackStandin, str]) -> None:
    bot, standin, database_url = served
    began = time.monotonic()
    bot.start()
    asked = time.monotonic()  # the incident is declared after this (its deadline: 3 s after that)
    r = bot.slash("/incident", "sev1 checkout 500s", user="U0SCRIBE")
    assert r.status_code == 200 and "INC-1" in r.json()["text"]
    answered = time.monotonic()
    wait_for("the notification", lambda: [p for p in standin.posts("C0WARROOM") if "INCIDENT [Critical]" in p["text"]], 5)
    first = wait_for("the ping to eng_oncall", lambda: channel_pings(standin, "U0ENG"), 8)
    assert time.monotonic() - asked >= 3  # not before its deadline
    assert time.monotonic() - answered < 3 + 1.5  # and about on time (tests/test_wakeup.py proves the wake-up)
    pinged = time.monotonic()
    wait_for("the next level armed from the posted ping", lambda: next_level_armed(database_url), 2)
    bot.kill()  # SIGKILL, before the next deadline (3 s after the ping was posted)
    assert time.monotonic() - pinged < 3, "killed too late to prove anything"
    assert channel_pings(standin, "U0EXEC") == []
    assert len(first) == 1

    bot.start()
    wait_for("the ping to exec", lambda: channel_pings(standin, "U0EXEC"), 10)
    # the level after that (chain exhausted) comes 3 s after this ping was posted: look until it arrives
    wait_for("the exhausted-chain ping", lambda: channel_pings(standin, "U0EXEC", exhausted=True), 8)
    bot.kill()
    assert len(channel_pings(standin, "U0ENG")) == 1
    assert len(channel_pings(standin, "U0EXEC")) == 1
    thread = [p for p in standin.posts("C0WARROOM") if p.get("thread_ts") and "<@U0EXEC>" in p["text"]
              and "exhausted" not in p["text"]]
    assert len(thread) == 1 and thread[0].get("reply_broadcast") is True  # one message: thread and channel
    assert standin.posts("C0OPERATORS") and "is now live" in standin.posts("C0OPERATORS")[0]["text"]
    assert [p for p in standin.posts("C0WARROOM") if p["text"].startswith("Status Update – Time")]
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            escalated = s.exec(select(AuditEvent).where(AuditEvent.kind == "incident.escalated")
                               .order_by(AuditEvent.id)).all()
    finally:
        engine.dispose()
    users = [(e.payload["user"], e.payload["exhausted"]) for e in escalated]
    assert users[:2] == [("U0ENG", False), ("U0EXEC", False)] and users.count(("U0EXEC", False)) == 1
    assert time.monotonic() - began < 30
