"""Nobody gets in where they don't belong (issue 18): what a careless or hostile request must not do,
through the real stack."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import time
from collections.abc import Iterator

import pytest

from bot import logs
from tests.harness import SECRET, TOKEN, Harness


@pytest.fixture
def production_log() -> Iterator[io.StringIO]:
    """bot.logs as `LOG_LEVEL=DEBUG` sets it up, into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    logs.configure("DEBUG", (TOKEN, SECRET), stream=stream)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_an_oversized_body_is_refused_before_it_is_read(bot: Harness) -> None:
    """A 400 MiB upload announced by its Content-Length gets its 413 after the first megabyte at most."""
    host, port = bot.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 419430400\r\n\r\n" + b"x" * 65536)
        started = time.monotonic()
        answer = conn.recv(200)
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 2
    assert bot.incidents() == []


def test_no_response_url_or_signature_reaches_the_log_at_debug(bot: Harness, production_log: io.StringIO) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.block_actions("no_such_button", "1")  # answered through its response_url
    bot.wait_for_responses(1)
    bot.post_signed("{broken", "application/json")
    logged = production_log.getvalue()
    assert logged  # something was logged at DEBUG
    assert "/respond/" not in logged and not re.search(r"v0=[0-9a-f]{64}", logged)
    assert all(json.loads(line) for line in logged.splitlines())  # one JSON object a line


def test_a_lone_surrogate_in_a_form_is_dropped_not_a_crash(bot: Harness) -> None:
    r = bot.view_submission("incident_declare", {"severity": "sev2", "summary": "db \ud83d down"})
    assert r.status_code == 200
    (incident,) = bot.incidents()
    assert incident.summary == "db  down"


def test_ids_with_a_trailing_newline_are_not_ids(bot: Harness) -> None:
    r = bot.slash("/incident", "sev2 search slow", user="U0ENG\n")
    assert r.status_code == 400 and "user_id is not a Slack id" in r.json()["error"]
    r = bot.slash("/incident", "sev2 search slow", channel="C0WARROOM\n")
    assert r.status_code == 400 and bot.incidents() == []


def test_an_error_quoting_a_link_shows_it_as_text(bot: Harness) -> None:
    out = bot.slash("/gonogo", "a`<https://evil.example|click>`b").json()["text"]
    assert "<https://" not in out and "&lt;https://evil.example|click&gt;" in out


def test_a_hundred_connections_at_once_are_all_served(bot: Harness) -> None:
    host, port = bot.url.removeprefix("http://").split(":")
    conns = [socket.create_connection((host, int(port)), timeout=10) for _ in range(100)]
    try:
        for conn in conns:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = [conn.recv(64) for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
