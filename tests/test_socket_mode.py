"""Socket Mode end to end (issue 12): `python -m bot` with the bot and app tokens and no signing secret,
against the Web API stand-in and a local Socket Mode stand-in (tests/socket_standin.py), sending Slack's
envelopes over the socket and reading the acks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func
from sqlmodel import Session, select

from db.models import Activity, Incident, OutboxMessage
from tests.conftest import TEST_CONFIG
from tests.processes import ROOT, BotProcess, wait_until, write_config
from tests.socket_standin import (
    SocketStandin,
    block_actions_envelope,
    event_envelope,
    redelivered,
    slash_envelope,
)
from tests.standin import SlackStandin

pytestmark = pytest.mark.process
APP_TOKEN = "xapp-1-A0WARROOM-0123456789-socket"


class SocketBot(BotProcess):
    """`python -m bot` in Socket Mode: SLACK_APP_TOKEN set, SLACK_SIGNING_SECRET not; ready once connected."""

    def __init__(self, socket: SocketStandin, **kwargs: Any) -> None:
        self.socket = socket
        super().__init__(extra_env={"SLACK_APP_TOKEN": APP_TOKEN}, **kwargs)

    def _spawn(self) -> None:
        self.env.pop("SLACK_SIGNING_SECRET", None)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop/kill)
        self.proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"bot exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if self.socket.wait_connected(timeout=0.1):
                return
        raise AssertionError(f"bot not connected after {timeout}s:\n{self.log()[-3000:]}")


@pytest.fixture
def socket_bot(standin: SlackStandin, database_url: str, tmp_path: Path) -> Iterator[tuple[SocketBot, SocketStandin]]:
    socket = SocketStandin(standin).start()
    # T0 tomorrow and no run-of-show: on the real clock, 2025's marks would be posted as missed
    t0 = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    config = write_config(tmp_path / "warroom.yaml", {
        **TEST_CONFIG, "launch": {**TEST_CONFIG["launch"], "t0": t0}, "run_of_show": []})
    bot = SocketBot(socket, api_url=standin.api_url, database_url=database_url, config_path=config,
                    log_path=tmp_path / "bot.log")
    try:
        yield bot.start(), socket
    finally:
        bot.stop()
        socket.stop()


def count(database_url: str, model: Any, *where: Any) -> int:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            return int(session.exec(select(func.count()).select_from(model).where(*where)).one())
    finally:
        engine.dispose()


def test_socket_mode_acks_posts_and_handles_a_redelivery_once(
        socket_bot: tuple[SocketBot, SocketStandin], standin: SlackStandin, database_url: str) -> None:
    bot, socket = socket_bot
    assert standin.calls_to("auth.test") and standin.calls_to("apps.connections.open"), \
        "both calls go to SLACK_API_URL"

    # a slash command: acked over the socket with the ephemeral reply, the notification posted
    declare = slash_envelope("/incident", "sev1 checkout down")
    started = time.monotonic()
    ack = socket.ack_for(socket.send(declare), timeout=3.0)
    assert time.monotonic() - started < 3.0
    assert ack.payload is not None and ack.payload.get("response_type") == "ephemeral"
    assert "INC-1" in ack.payload["text"]
    assert wait_until(lambda: standin.posts("C0WARROOM"))
    [post] = standin.posts("C0WARROOM")
    assert post["text"].startswith("INCIDENT [Critical]") and "INC-1" in post["text"]
    posted_ts = standin.calls_to("chat.postMessage")[0].response["ts"]

    # a button: Acknowledge on that message
    click = block_actions_envelope("incident_ack", "1", user="U0ENG", message_ts=posted_ts)
    socket.ack_for(socket.send(click))
    assert wait_until(lambda: standin.calls_to("chat.update"))
    update = standin.calls_to("chat.update")[0].args
    assert update["ts"] == posted_ts and "Acknowledged by <@U0ENG>" in json.dumps(update["blocks"])

    # an event: someone writing in the war room counts as activity, once, however often Slack delivers it
    said = event_envelope({"type": "message", "channel": "C0WARROOM", "user": "U0SCRIBE", "text": "on it",
                           "channel_type": "channel"})
    assert socket.ack_for(socket.send(said)).payload is None
    socket.ack_for(socket.send(redelivered(said, retry_attempt=1, new_id=True)))
    assert count(database_url, Activity, Activity.user_id == "U0SCRIBE", Activity.source == "message") == 1

    # the slash command again: redelivered as is, then under a new envelope id: no second incident
    socket.send(redelivered(declare, retry_attempt=1))
    again = socket.ack_for(declare["envelope_id"], count=2)
    other = socket.ack_for(socket.send(redelivered(declare, retry_attempt=2, new_id=True)))
    for redelivery in (again, other):
        assert "INC-2" not in json.dumps(redelivery.raw)
    assert count(database_url, Incident) == 1
    listing = socket.ack_for(socket.send(slash_envelope("/incident", "list")))
    assert listing.payload is not None
    assert "INC-1" in listing.payload["text"] and "INC-2" not in listing.payload["text"]
    assert not [p for p in standin.posts() if "INC-2" in json.dumps(p)]

    log = bot.log()
    assert "xapp-" not in log and "xoxb-" not in log, "tokens are redacted from the log"
    bot.stop()
    assert bot.proc.returncode == 0, f"SIGTERM stops Socket Mode cleanly:\n{log[-2000:]}"


def test_socket_mode_acks_malformed_payloads_without_effect(
        socket_bot: tuple[SocketBot, SocketStandin], standin: SlackStandin, database_url: str) -> None:
    bot, socket = socket_bot
    malformed = [
        slash_envelope("/incident", "sev2 from a user id that is a number", user_id=42),
        slash_envelope("/incident", ["sev2", "text that is a list"]),  # type: ignore[arg-type]
        block_actions_envelope("incident_ack", "1", actions=None),
        block_actions_envelope("incident_ack", "1", actions="incident_ack"),
        block_actions_envelope("incident_ack", "1", user="U0ENG", channel={"id": ["C0WARROOM"]}),
        event_envelope({"type": "app_mention", "channel": "C0WARROOM", "user": "U0ENG", "text": "<@U0BOT> hi"}),
        event_envelope({"type": "message", "channel": ["C0WARROOM"], "user": {"id": "U0ENG"}, "text": "hi"}),
    ]
    for sent in malformed:
        socket.ack_for(socket.send(sent))  # acked, so Slack does not send it again
    assert bot.proc.poll() is None
    assert count(database_url, Incident) == 0
    assert count(database_url, OutboxMessage) == 0
    assert count(database_url, Activity) == 0

    # and the bot still works
    ack = socket.ack_for(socket.send(slash_envelope("/incident", "sev3 still here")))
    assert ack.payload is not None and "INC-1" in ack.payload["text"]
    assert count(database_url, Incident) == 1


def test_socket_mode_says_what_the_app_token_needs(standin: SlackStandin, tmp_path: Path) -> None:
    """An app token without connections:write: the bot says so and exits, instead of a traceback."""
    standin.fail("apps.connections.open", error="missing_scope", times=None)
    socket = SocketStandin(standin).start()
    bot = SocketBot(socket, api_url=standin.api_url, database_url=f"sqlite:///{tmp_path / 'warroom.db'}",
                    log_path=tmp_path / "bot.log")
    try:
        assert bot.proc.wait(timeout=20) == 1
        log = bot.log()
        assert "missing_scope" in log and "connections:write" in log and "Traceback" not in log
        assert APP_TOKEN not in log
    finally:
        bot.stop()
        socket.stop()
