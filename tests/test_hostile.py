"""Hostile input: whatever arrives, the answer is a clear ephemeral reply or a 4xx, never a
5xx or a stack trace; nothing is stored when a command fails; nothing unsigned, stale or
replayed gets in; no user text becomes a mention; no secret reaches a log or the record.

Property-based over every registered slash command (commands.registry.SLASH, so families
merged later are covered) and every interactive payload kind.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, text
from sqlmodel import SQLModel, select

import commands.families  # noqa: F401  (every family registers its commands)
from bot import logs
from commands.registry import ACTIONS, SLASH, VIEWS
from db.models import AuditEvent
from tests.harness import SECRET, TOKEN, Harness, sign

SETTINGS = settings(max_examples=40, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FORM = "application/x-www-form-urlencoded"
MENTIONS = ("<!channel>", "<!here>", "<!everyone>", "<!subteam^S0EVIL>", "<@U0EVIL>", "<@U0EVIL|evil>",
            "<#C0EVIL>", "<https://evil.example|click>", "<mailto:x@evil.example|x>")
SPECIALS = re.compile(r"<!(channel|here|everyone|subteam)|<@U0EVIL|<#C0EVIL|<https://evil|<mailto:")


# -- what "nothing stored" means ------------------------------------------------------

def snapshot(bot: Harness) -> dict[str, int]:
    """Row counts of every table, except the request log (seen signatures) and refusals
    (a refused command is written to the audit trail on purpose)."""
    counts: dict[str, int] = {}
    with bot.session() as s:
        for table in SQLModel.metadata.sorted_tables:
            if table.name == "seenrequest":
                continue
            counts[table.name] = int(s.exec(select(func.count()).select_from(table)).one())  # type: ignore[call-overload]
        counts["auditevent"] = int(s.exec(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.kind != "command.refused")).one())
    return counts


class Commits:
    """Counts the dispatcher's successful commits (it calls on_commit only after one)."""

    def __init__(self, bot: Harness) -> None:
        self.n = 0
        dispatcher = bot.runtime.dispatcher
        inner = dispatcher.on_commit

        def counted() -> None:
            self.n += 1
            inner()

        dispatcher.on_commit = counted


@pytest.fixture
def commits(bot: Harness) -> Commits:
    return Commits(bot)


def clean_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    assert "Traceback" not in r.text and 'File "' not in r.text
    if r.status_code == 200 and r.text:
        body = r.json()
        if "text" in body:
            assert body["text"].strip() and body.get("response_type", "ephemeral") == "ephemeral"


def nothing_stored_unless_committed(bot: Harness, commits: Commits, before_commits: int,
                                    before: dict[str, int]) -> None:
    if commits.n == before_commits:
        assert snapshot(bot) == before


BROADCASTS = re.compile(r"<!(channel|here|everyone|subteam)")


def no_mention_posted(bot: Harness, replies: list[httpx.Response] = ()) -> None:  # type: ignore[assignment]
    """Nothing in a channel carries user-typed markup; an ephemeral answer (seen only by the one
    who typed it) may quote their own `<@U…>` back, but never a broadcast like `<!channel>`."""
    bot.deliver()
    for call in bot.standin.calls:
        blob = json.dumps(call.args, ensure_ascii=False)
        if call.method in ("chat.postMessage", "chat.update"):
            assert not SPECIALS.search(blob), blob[:500]
        elif call.method == "response_url":
            assert not BROADCASTS.search(blob), blob[:500]
    for r in replies:
        assert not BROADCASTS.search(r.text), r.text[:500]


# -- strategies -----------------------------------------------------------------------

def subcommand_words() -> dict[str, list[str]]:
    """Words each command's usage line names after the command (`/incident ack`, `/heartbeat pause`)."""
    words: dict[str, list[str]] = {}
    for name, command in SLASH.items():
        found = re.findall(re.escape(name) + r"\s+([a-z0-9]+)", command.usage)
        words[name] = sorted({*found, "sev1", "sev2", "critical", "help", "INC-1", "1"})
    return words


WORDS = subcommand_words()
nasty_text = st.one_of(
    st.text(max_size=120),
    st.text(alphabet=st.characters(max_codepoint=0x1F, codec="utf-8"), max_size=40),  # control characters
    st.text(alphabet=st.characters(min_codepoint=0x80, codec="utf-8"), max_size=80),  # unicode only
    st.sampled_from(MENTIONS),
    st.lists(st.sampled_from([*MENTIONS, "&", "<", ">", "|", "impact:", "INC-1", "INC-999999999", " "]),
             max_size=8).map(" ".join),
    st.just("x" * 40_000),
    st.just("é" * 20_000 + "<!channel>"),
)


@st.composite
def slash_text(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(SLASH)))
    head = draw(st.one_of(st.just(""), st.sampled_from(WORDS[name])))
    arg = draw(st.one_of(st.just(""), st.sampled_from(["INC-1", "1", "<@U0EVIL>", "U0EVIL", "5m", "sev2"])))
    tail = draw(nasty_text)
    return name, " ".join(p for p in (head, arg, tail) if p)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def block_actions_payload(action_id: str, value: Any, user: Any = None) -> dict[str, Any]:
    return {
        "type": "block_actions", "team": {"id": "T0STANDIN", "domain": "standin"},
        "user": user if user is not None else {"id": "U0COMMANDER", "username": "c", "team_id": "T0STANDIN"},
        "api_app_id": "A0WARROOM", "token": "legacy", "trigger_id": f"trigger.h.{uuid.uuid4().hex}",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0WARROOM"},
        "channel": {"id": "C0WARROOM", "name": "launch-war-room"}, "response_url": "",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                     "action_ts": str(time.time())}],
    }


def view_payload(callback_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "view_submission", "team": {"id": "T0STANDIN", "domain": "standin"},
        "user": {"id": "U0COMMANDER", "username": "c", "team_id": "T0STANDIN"}, "api_app_id": "A0WARROOM",
        "token": "legacy", "trigger_id": f"trigger.v.{uuid.uuid4().hex}",
        "view": {"id": "V1", "type": "modal", "callback_id": callback_id, "private_metadata": "", "hash": "h",
                 "state": {"values": values}},
    }


@st.composite
def mutated(draw: st.DrawFn, payload: dict[str, Any]) -> dict[str, Any]:
    """Drop a key, or replace a value (anywhere one level down) with any JSON value."""
    payload = json.loads(json.dumps(payload))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        target = payload
        if draw(st.booleans()):
            nested = [k for k, v in payload.items() if isinstance(v, dict)]
            if nested:
                target = payload[draw(st.sampled_from(sorted(nested)))]
        if not target:
            continue
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(json_values)
    return payload


_nonce = iter(range(10**9))


def post_payload(bot: Harness, payload: Any) -> httpx.Response:
    """Each post is a new request, as each of Slack's is: a fresh trigger id where the payload has one
    (a mutated one may not), and a nonce, keep two equal payloads apart."""
    if isinstance(payload, dict) and isinstance(payload.get("trigger_id"), str):
        payload = {**payload, "trigger_id": f"trigger.{next(_nonce)}"}
    raw = payload if isinstance(payload, str) else json.dumps({**payload, "nonce": next(_nonce)})
    return bot.post_signed(urlencode({"payload": raw}), FORM)


# -- properties ---------------------------------------------------------------------

@SETTINGS
@given(case=slash_text())
def test_any_text_for_any_command_is_answered_cleanly(bot: Harness, commits: Commits, case: tuple[str, str]) -> None:
    name, text_ = case
    before, n = snapshot(bot), commits.n
    r = bot.slash(name, text_)
    clean_answer(r)
    assert r.status_code == 200
    nothing_stored_unless_committed(bot, commits, n, before)
    no_mention_posted(bot, [r])


@SETTINGS
@given(action_id=st.one_of(st.sampled_from(sorted(ACTIONS)), st.text(max_size=40)), value=nasty_text)
def test_any_button_value_is_answered_cleanly(bot: Harness, commits: Commits, action_id: str, value: str) -> None:
    before, n = snapshot(bot), commits.n
    r = post_payload(bot, block_actions_payload(action_id, value))
    clean_answer(r)
    assert r.status_code == 200
    nothing_stored_unless_committed(bot, commits, n, before)
    no_mention_posted(bot)


@SETTINGS
@given(payload=mutated(block_actions_payload("incident_ack", "1")) | mutated(
    view_payload("incident_declare", {"severity": {"value": {"type": "static_select",
                                                            "selected_option": {"value": "sev1"}}},
                                      "summary": {"value": {"type": "plain_text_input", "value": "db down"}}})))
def test_malformed_interactive_payloads_get_a_4xx_or_a_clean_answer(bot: Harness, commits: Commits,
                                                                    payload: dict[str, Any]) -> None:
    before, n = snapshot(bot), commits.n
    r = post_payload(bot, payload)
    clean_answer(r)
    assert r.status_code in (200, 400, 404)
    if r.status_code >= 400:
        assert commits.n == n and r.json()["error"]
    nothing_stored_unless_committed(bot, commits, n, before)


@SETTINGS
@given(raw=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                     json_values.map(json.dumps)))
def test_garbage_bodies_get_a_4xx(bot: Harness, raw: str) -> None:
    before = snapshot(bot)
    for content_type, body in ((FORM, urlencode({"payload": raw})), ("application/json", raw), (FORM, raw)):
        r = bot.post_signed(body, content_type)
        clean_answer(r)
    assert snapshot(bot) == before


@SETTINGS
@given(summary=nasty_text, impact=nasty_text, callback=st.one_of(st.sampled_from(sorted(VIEWS)), st.text(max_size=20)))
def test_any_modal_submission_is_answered_cleanly(bot: Harness, commits: Commits, summary: str, impact: str,
                                                  callback: str) -> None:
    before, n = snapshot(bot), commits.n
    r = bot.view_submission(callback, {"severity": "sev2", "summary": summary, "impact": impact})
    clean_answer(r)
    assert r.status_code == 200
    nothing_stored_unless_committed(bot, commits, n, before)
    no_mention_posted(bot)


def test_wrong_types_and_missing_fields_say_what_is_wrong(bot: Harness) -> None:
    cases = {
        "value must be a string": block_actions_payload("incident_ack", 7),
        "user must be an object": block_actions_payload("incident_ack", "1", user="U0X"),
        "id missing": block_actions_payload("incident_ack", "1", user={"name": "x"}),
        "id is not a Slack id": block_actions_payload("incident_ack", "1", user={"id": "U0" + "X" * 60}),
        "actions must be a non-empty list": {**block_actions_payload("incident_ack", "1"), "actions": []},
        "view must be an object": {**view_payload("incident_declare", {}), "view": "x"},
    }
    for error, payload in cases.items():
        r = post_payload(bot, payload)
        assert r.status_code == 400 and error in r.json()["error"], (error, r.text)
    r = bot.post_signed(urlencode({"command": "/incident", "text": "sev1 nobody"}), FORM)
    assert r.status_code == 400 and "user_id" in r.json()["error"]
    r = bot.post_signed("{not json", "application/json")
    assert r.status_code == 400 and r.json() == {"error": "malformed JSON"}
    assert bot.incidents() == []


def test_unknown_command_button_and_form_get_a_clear_answer(bot: Harness) -> None:
    r = bot.slash("/nonsense", "sev1 x")
    assert r.status_code == 200 and "not a warroom command" in r.json()["text"]
    r = bot.block_actions("no_such_button", "1")
    assert r.status_code == 200
    assert "not one warroom knows" in bot.wait_for_responses(1)[0]["text"]
    r = bot.view_submission("no_such_form", {"summary": "x"})
    assert r.status_code == 200
    assert bot.incidents() == [] and bot.outbox() == []


def test_the_word_payload_in_a_command_is_just_a_word(bot: Harness) -> None:
    """Bolt's parser takes any form body containing "payload" for an interactive one; ours does not."""
    r = bot.slash("/incident", "sev2 payload service drops requests")
    assert r.status_code == 200 and "Declared INC-1" in r.json()["text"]
    assert bot.incidents()[0].summary == "payload service drops requests"


def test_control_characters_are_dropped_and_nul_never_reaches_the_database(bot: Harness) -> None:
    r = bot.slash("/incident", "sev2 check\x00out\x1b[31m down\tnow")
    assert r.status_code == 200 and "Declared" in r.json()["text"]
    assert bot.incidents()[0].summary == "checkout[31m down\tnow"


def test_user_text_never_becomes_a_mention(bot: Harness) -> None:
    evil = " ".join(MENTIONS)
    no_pipes = " ".join(m for m in MENTIONS if "|" not in m)  # `|` separates impact/workaround in /incident
    replies = [
        bot.slash("/incident", f"sev1 {no_pipes} | impact: {no_pipes} | workaround: {no_pipes}"),
        bot.slash("/incident", f"update INC-1 {evil}"),
        bot.slash("/incident", f"owner INC-1 <@U0ENG|{evil}>"),
        bot.slash("/incident", f"resolve INC-1 {evil}"),
        bot.view_submission("incident_declare", {"severity": "sev2", "summary": evil, "impact": evil}),
        bot.block_actions("incident_ack", evil),
    ]
    assert [r.status_code for r in replies] == [200] * 6
    assert "Declared INC-1" in replies[0].json()["text"] and "Update posted" in replies[1].json()["text"]
    bot.wait_for_responses(1)
    bot.deliver()
    assert "is not a Slack user" in replies[2].json()["text"]  # a display name with markup: refused
    texts = [p["text"] for p in bot.posts()]
    assert sum(t.startswith("INCIDENT [") for t in texts) == 2  # the two notifications
    in_thread = " ".join(t for t in texts if not t.startswith("INCIDENT ["))  # one post, or two if not merged
    assert "Update on INC-1" in in_thread and "INC-1 resolved by" in in_thread
    no_mention_posted(bot, replies)
    assert "&lt;!channel&gt;" in bot.posts()[0]["text"]  # escaped, shown as typed


# -- signatures and replays ----------------------------------------------------------

def test_bad_stale_and_missing_signatures_get_401_and_change_nothing(bot: Harness) -> None:
    body = urlencode({"command": "/incident", "text": "sev1 forged", "user_id": "U0X", "channel_id": "C0WARROOM",
                      "trigger_id": "t.forged"})
    now = int(time.time())
    attempts = {
        "wrong secret": {"Content-Type": FORM, **sign(body, secret="not-the-secret")},
        "stale (301 s)": {"Content-Type": FORM, **sign(body, timestamp=now - 301)},
        # beyond Slack's 5 minutes by more than the seconds this test itself takes: `now` was read above
        "from the future": {"Content-Type": FORM, **sign(body, timestamp=now + 330)},
        "no signature": {"Content-Type": FORM, "X-Slack-Request-Timestamp": str(now)},
        "no timestamp": {"Content-Type": FORM, "X-Slack-Signature": sign(body)["X-Slack-Signature"]},
        "timestamp not a number": {"Content-Type": FORM, "X-Slack-Request-Timestamp": "soon",
                                   "X-Slack-Signature": "v0=00"},
    }
    for what, headers in attempts.items():
        r = bot.http.post("/slack/events", content=body.encode(), headers=headers)
        assert r.status_code == 401, what
    tampered = {"Content-Type": FORM, **sign(body)}
    r = bot.http.post("/slack/events", content=body.replace("forged", "tampered").encode(), headers=tampered)
    assert r.status_code == 401
    assert bot.incidents() == [] and snapshot(bot)["activity"] == 0


def test_a_replayed_command_or_click_gets_401_and_acts_once(bot: Harness) -> None:
    """Slack never sends the same slash command or click twice (each has a fresh trigger_id and
    timestamp): the same signed body again, inside the 5-minute window, is a replay."""
    body = urlencode({"command": "/incident", "text": "sev2 replayed", "user_id": "U0COMMANDER",
                      "channel_id": "C0WARROOM", "trigger_id": "t.replay"})
    headers = {"Content-Type": FORM, **sign(body)}
    first = bot.http.post("/slack/events", content=body.encode(), headers=headers)
    again = bot.http.post("/slack/events", content=body.encode(), headers=headers)
    assert first.status_code == 200 and again.status_code == 401 and again.json()["error"] == "replayed request"
    assert len(bot.incidents()) == 1
    click = urlencode({"payload": json.dumps(block_actions_payload("incident_ack", "1"))})
    headers = {"Content-Type": FORM, **sign(click)}
    assert bot.http.post("/slack/events", content=click.encode(), headers=headers).status_code == 200
    assert bot.http.post("/slack/events", content=click.encode(), headers=headers).status_code == 401
    # the same words typed again are a new command, not a replay
    assert bot.slash("/incident", "sev2 replayed").status_code == 200 and len(bot.incidents()) == 2


def test_a_replayed_refusal_is_recorded_once(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout down")
    body = urlencode({"command": "/incident", "text": "resolve INC-1", "user_id": "U0CX",
                      "channel_id": "C0WARROOM", "trigger_id": "t.refused"})
    headers = {"Content-Type": FORM, **sign(body)}
    first = bot.http.post("/slack/events", content=body.encode(), headers=headers)
    again = bot.http.post("/slack/events", content=body.encode(), headers=headers)
    assert first.status_code == 200 and "Only the owner" in first.json()["text"]
    assert again.status_code == 401
    assert len(bot.events("command.refused")) == 1 and bot.incidents()[0].status == "open"


def test_a_replayed_event_is_acted_on_once(bot: Harness) -> None:
    body = json.dumps({"type": "event_callback", "event_id": "Ev0REPLAY", "team_id": "T0STANDIN",
                       "event": {"type": "message", "channel": "C0WARROOM", "user": "U0CX", "text": "hi",
                                 "ts": "1.2"}})
    headers = {"Content-Type": "application/json", **sign(body)}
    codes = [bot.http.post("/slack/events", content=body.encode(), headers=headers).status_code for _ in range(3)]
    assert codes == [200, 200, 200]  # Slack may resend an event: answered, not acted on again
    assert snapshot(bot)["activity"] == 1


def test_oversized_body_is_413(bot: Harness) -> None:
    body = urlencode({"command": "/incident", "text": "x" * (1 << 20), "user_id": "U0X"})
    r = bot.post_signed(body, FORM)
    assert r.status_code == 413 and bot.incidents() == []


# -- secrets -----------------------------------------------------------------------------

@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The production log setup (bot.logs), at DEBUG, into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    logs.configure("DEBUG", (TOKEN, SECRET), stream=stream)
    for noisy in ("slack_sdk", "slack_bolt", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_tokens_and_the_signing_secret_never_reach_logs_or_the_record(bot: Harness, json_log: io.StringIO) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.slash("/incident", "")  # views.open with the bot token
    bot.block_actions("incident_ack", "1")
    bot.wait_for_responses(1)
    bot.standin.fail("chat.postMessage", error="invalid_auth")
    bot.deliver()
    bot.standin.fail("chat.postMessage", status=500)
    bot.clock.advance(__import__("datetime").timedelta(minutes=2))
    bot.deliver()
    bot.post_signed("{broken", "application/json")
    bot.http.post("/slack/events", content=b"command=/incident", headers={
        "Content-Type": FORM, "X-Slack-Signature": "v0=" + SECRET, "X-Slack-Request-Timestamp": str(int(time.time()))})
    logged = json_log.getvalue()
    assert len(logged.splitlines()) > 10  # the capture really captured (DEBUG from slack_sdk included)
    assert TOKEN not in logged and SECRET not in logged
    with bot.session() as s:  # the record every export is made from
        for table in SQLModel.metadata.sorted_tables:
            for row in s.exec(text(f'SELECT * FROM "{table.name}"')).all():  # type: ignore[call-overload]
                dumped = " ".join(str(v) for v in row)
                assert TOKEN not in dumped and SECRET not in dumped, table.name
    for call in bot.standin.calls:
        assert TOKEN not in json.dumps(call.args) and SECRET not in json.dumps(call.args)
