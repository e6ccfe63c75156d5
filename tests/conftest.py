"""Fixtures: the Slack stand-in, a database per test (SQLite file, and PostgreSQL when
WARROOM_TEST_POSTGRES is set or a server answers on 127.0.0.1:5432), and the real app over HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.clock import ManualClock
from commands.config import Config, parse_config
from tests.harness import Harness
from tests.standin import SlackStandin

PG_ADMIN = os.environ.get("WARROOM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START = datetime(2025, 10, 16, 17, 0, tzinfo=UTC)  # 10:00 in Los Angeles

TEST_CONFIG: dict[str, Any] = {
    "launch": {"name": "HotDash Control Center", "t0": "2025-10-16T10:00:00-07:00", "timezone": "America/Los_Angeles"},
    "channels": {"war_room": "C0WARROOM", "broadcast": ["C0OPERATORS"]},
    "roles": {"commander": "U0COMMANDER", "scribe": "U0SCRIBE", "eng_oncall": "U0ENG", "devops": "U0DEVOPS",
              "cx": "U0CX", "exec": "U0EXEC"},
    "severities": {
        "sev1": {"name": "Critical", "ack_within": "5m", "escalate_to": ["commander", "eng_oncall", "exec"]},
        "sev2": {"name": "High", "ack_within": "15m", "escalate_to": ["commander", "eng_oncall"]},
        "sev3": {"name": "Medium", "ack_within": "next_checkpoint"},
        "sev4": {"name": "Low"},
    },
    "heartbeat": {"every": "30m", "for": "4h"},
    "run_of_show": [{"at": "T-24h", "text": "Dry run in staging, confirm feature flags"},
                    {"at": "T+15m", "text": "Verify metrics (latency, error rates)"}],
    # the tests play whole war rooms from a few users; tests/test_limits.py holds the limits themselves
    "limits": {"per_user_per_minute": 10000, "declarations_per_user_per_hour": 10000},
}


def _postgres_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


POSTGRES = _postgres_available()
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES and not os.environ.get("CI"), reason="no PostgreSQL on 127.0.0.1:5432"))]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"warroom_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warroom.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def standin(request: pytest.FixtureRequest) -> Iterator[SlackStandin]:
    s = SlackStandin().start()
    yield s
    s.stop()
    # every payload the bot sent was held to Slack's Block Kit rules: one Slack refuses fails the test
    refused = s.rejected()
    if refused and request.node.get_closest_marker("refused_blocks") is None:
        lines = [f"{c.method} -> {c.response['error']}: {'; '.join(c.response['errors'])}" for c in refused]
        pytest.fail("Slack would refuse what the bot sent:\n" + "\n".join(lines))


@pytest.fixture
def config() -> Config:
    return parse_config(TEST_CONFIG)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def bot(standin: SlackStandin, database_url: str, config: Config, clock: ManualClock) -> Iterator[Harness]:
    harness = Harness(standin, database_url, config, clock)
    yield harness
    harness.close()
