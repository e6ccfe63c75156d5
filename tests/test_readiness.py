"""Readiness gates before T0 (`/ready`, seeds 002 and 004): config items, reminders and overdue messages on
their times, owners followed at send time, T0 moves, the go/no-go held back, a restart, through the real stack."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from sqlmodel import select

from commands.config import Config, ConfigError, parse_config
from db.readiness import ReadinessItem
from db.models import Timer
from tests.conftest import START, TEST_CONFIG
from tests.console_helpers import COMMANDER, CX, ENG, EXEC, INJECTION, SCRIBE, STRANGER, click, decisions, refusals, slash, texts
from tests.harness import Harness

QA, REL = "U0QA", "U0REL"
T0 = START + timedelta(days=3)  # the launch is three days ahead: every gate is still to come
READINESS = [
    {"id": "qa-evidence", "text": "QA evidence: ?mock=0 sustained HTTP 200, synthetic check < 300 ms", "owner": "qa",
     "due": "T-48h", "critical": True},
    {"id": "embed-token", "text": "Shopify embed token delivered", "owner": "reliability", "due": "T-24h",
     "critical": True},
    {"id": "facilitators", "text": "Facilitators confirmed", "owner": "cx", "due": "T-60h"},
]


def readiness_config(**extra: Any) -> Config:
    return parse_config({**TEST_CONFIG, "launch": {**TEST_CONFIG["launch"], "t0": T0.isoformat()},
                         "roles": {**TEST_CONFIG["roles"], "qa": QA, "reliability": REL},
                         "readiness": READINESS, "readiness_remind_before": "12h", **extra})


@pytest.fixture
def config() -> Config:
    return readiness_config()


def items(bot: Harness) -> dict[str, ReadinessItem]:
    with bot.session() as s:
        return {i.key: i for i in s.exec(select(ReadinessItem)).all()}


def new_posts(bot: Harness, before: int) -> list[dict[str, Any]]:
    return bot.posts("C0WARROOM")[before:]


def test_ready_lists_every_item_with_its_state_owner_due_and_critical(bot: Harness) -> None:
    text = slash(bot, "/ready", user=STRANGER)
    lines = text.splitlines()
    assert lines[0].strip("*") == "Readiness: 0/3 ready"
    qa = next(line for line in lines if "qa-evidence" in line)
    assert "pending" in qa and "critical" in qa and "T-48h" in qa and "Fri 17 Oct 10:00 PDT" in qa and "<@U0QA>" in qa
    facilitators = next(line for line in lines if "facilitators" in line)
    assert "critical" not in facilitators and "T-60h" in facilitators
