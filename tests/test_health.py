"""`GET /healthz`: 200 when all is well; 503 when the database is unreachable or messages have
waited over 5 minutes to reach Slack, and the body says which."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from bot.clock import ManualClock
from commands.config import Config
from tests.conftest import PG_ADMIN
from tests.faults import queue, requires_postgres, settle
from tests.harness import Harness
from tests.standin import SlackStandin


def health(bot: Harness) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = bot.http.get("/healthz")
    return r.status_code, r.json()


@contextmanager
def database_down(bot: Harness) -> Iterator[None]:
    """Make the database refuse connections, then bring it back."""
    url = bot.env.database_url
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        aside = path.with_suffix(".aside")
        aside.mkdir()
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                os.rename(f"{path}{suffix}", aside / f"db{suffix}")
        path.mkdir()  # a directory where the file was: sqlite cannot open it
        bot.runtime.engine.dispose()  # pooled connections would still hold the moved file open
        try:
            yield
        finally:
            path.rmdir()
            for suffix in ("", "-wal", "-shm"):
                if (aside / f"db{suffix}").exists():
                    os.rename(aside / f"db{suffix}", f"{path}{suffix}")
            shutil.rmtree(aside)
        return
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_healthy(bot: Harness) -> None:
    status, body = health(bot)
    assert status == 200 and body["db"] == "ok" and body["outbox"]["status"] == "ok" and body["problems"] == []


def test_database_unreachable_is_503_and_says_so(bot: Harness) -> None:
    with database_down(bot):
        status, body = health(bot)
        assert status == 503
        assert body["db"].startswith("unreachable") and body["problems"] == ["database unreachable"]
    status, body = health(bot)
    assert status == 200 and body["db"] == "ok"  # back when the database is


def test_messages_stuck_over_five_minutes_are_503_and_say_so(bot: Harness) -> None:
    bot.standin.outage()
    bot.slash("/incident", "sev2 checkout slow")
    bot.deliver()
    bot.clock.advance(timedelta(minutes=4, seconds=59))
    bot.deliver()
    status, body = health(bot)
    assert status == 200 and body["outbox"]["pending"] == 1  # waiting, but not yet for 5 minutes
    bot.clock.advance(timedelta(seconds=2))
    status, body = health(bot)
    assert status == 503 and body["db"] == "ok"
    assert body["problems"] == ["1 message(s) undelivered for over 5 minutes"]
    assert body["outbox"]["stuck_over_5m"] == 1 and body["outbox"]["last_errors"]
    bot.standin.end_outage()
    settle(bot, step=timedelta(seconds=30))
    status, body = health(bot)
    assert status == 200 and body["outbox"]["pending"] == 0


def test_messages_slack_refused_for_good_are_counted_not_unhealthy(bot: Harness) -> None:
    bot.standin.fail("chat.postMessage", error="channel_not_found", channel="C0GONE", times=None)
    queue(bot, "C0GONE", 2)
    settle(bot)
    bot.clock.advance(timedelta(minutes=10))
    status, body = health(bot)
    assert status == 200 and body["outbox"]["undeliverable"] == 2


def test_healthz_rejects_other_methods_and_paths(bot: Harness) -> None:
    assert bot.http.post("/healthz").status_code == 404
    assert bot.http.get("/slack/events").status_code == 405
    assert bot.http.get("/nowhere").status_code == 404


@requires_postgres
def test_commands_survive_postgres_dropping_every_connection(
        pg_url: str, standin: SlackStandin, config: Config, clock: ManualClock) -> None:
    """A database restart or failover cuts the pool's connections: the next command still works
    (its statement fails on the dead connection, the pool is renewed, the command is retried)."""
    bot = Harness(standin, pg_url, config, clock)
    try:
        assert "Declared INC-1" in bot.slash("/incident", "sev2 before the cut").json()["text"]
        name = pg_url.rsplit("/", 1)[1]
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            cut = conn.execute(text(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    f"WHERE datname = '{name}'")).scalar()
        admin.dispose()
        assert cut >= 1
        r = bot.slash("/incident", "sev2 after the cut")
        assert r.status_code == 200 and "Declared INC-2" in r.json()["text"]
        bot.deliver()
        assert len(bot.posts("C0WARROOM")) == 2
        assert health(bot)[0] == 200
    finally:
        bot.close()
