"""/statuspage: a confirmation before anything public, then create and update the page incident, through the
real stack against an Atlassian Statuspage stand-in on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from slack_sdk.models.blocks import Block
from sqlmodel import select

from bot.clock import ManualClock
from bot.scheduler import run_outside_calls
from commands.config import Config, parse_config
from db.beyond import StatusPageUpdate
from tests.console_helpers import COMMANDER, CX, ENG, STRANGER, WAR_ROOM, click, message, slash, texts, ts_of
from tests.harness import Harness
from tests.outside_standins import StatuspageStandin
from tests.standin import SlackStandin

KEY = "sp-api-key-0123456789abcdef"
PAGE = "abc123"
SLOW = "Checkout is slow for some customers"


@pytest.fixture
def statuspage(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatuspageStandin]:
    monkeypatch.setenv("STATUSPAGE_API_KEY", KEY)
    with StatuspageStandin(PAGE, KEY) as server:
        yield server


@pytest.fixture
def config(request: pytest.FixtureRequest, statuspage: StatuspageStandin) -> Config:
    from tests.conftest import TEST_CONFIG

    raw = dict(TEST_CONFIG)
    if request.node.get_closest_marker("no_status_page") is None:
        raw["status_page"] = {"statuspage": {"url": statuspage.url, "page_id": PAGE, "retries": 1}}
        if request.node.get_closest_marker("short_timeout") is not None:  # below the YAML's smallest, 1s
            raw["status_page"]["statuspage"]["timeout"] = timedelta(milliseconds=400)
    return parse_config(raw)


def declare(bot: Harness) -> None:
    assert "Declared INC-1" in slash(bot, "/incident", "sev1 checkout 500s", user="U0SCRIBE")
    bot.deliver()


def send(bot: Harness) -> int:
    n = run_outside_calls(bot.runtime.dispatcher)
    bot.deliver()
    return n


def updates(bot: Harness) -> list[StatusPageUpdate]:
    with bot.session() as s:
        return list(s.exec(select(StatusPageUpdate).order_by(StatusPageUpdate.id)).all())  # type: ignore[arg-type]


def ask(bot: Harness, text: str, user: str = COMMANDER) -> str:
    out = slash(bot, "/statuspage", text, user=user)
    bot.deliver()
    return out


def confirm(bot: Harness, user: str = COMMANDER, update_id: int | None = None) -> str:
    uid = update_id or updates(bot)[-1].id
    return click(bot, "statuspage_confirm", str(uid), user=user, ref=f"statuspage:{uid}")


def test_acceptance_nothing_public_until_confirm_then_one_post(bot: Harness, statuspage: StatuspageStandin) -> None:
    declare(bot)
    out = ask(bot, f"INC-1 investigating {SLOW}")
    assert out.startswith("The public text is in INC-1's thread: nothing is sent to the status page until")
    bot.advance(timedelta(minutes=2))
    assert send(bot) == 0 and statuspage.calls == []  # nothing public before the click
    [update] = updates(bot)
    shown = message(bot, WAR_ROOM, ts_of(bot, f"statuspage:{update.id}"))
    assert shown["thread_ts"] == ts_of(bot, f"incident:{bot.incidents()[0].id}")
    assert "(investigating), asked by <@U0COMMANDER>" in shown["text"] and SLOW in shown["text"]
    buttons = [b for b in shown["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("statuspage_confirm", str(update.id)),
                                                                ("statuspage_cancel", str(update.id))]
    for block in shown["blocks"]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    assert confirm(bot).startswith("Confirmed: the status page update for INC-1 is on its way")
    assert send(bot) == 1 and send(bot) == 0
    [call] = statuspage.calls
    assert (call.method, call.path) == ("POST", f"/v1/pages/{PAGE}/incidents")
    assert call.headers["Authorization"] == f"OAuth {KEY}"
    assert call.json == {"incident": {"name": SLOW, "status": "investigating", "body": SLOW}}
    [created] = statuspage.incidents.values()
    assert any(t.startswith(f":globe_with_meridians: Status page updated for INC-1 (investigating): {created['shortlink']}")
               for t in texts(bot))
    after = message(bot, WAR_ROOM, ts_of(bot, f"statuspage:{update.id}"))
    assert "confirmed by <@U0COMMANDER>" in after["text"] and all(b["type"] != "actions" for b in after["blocks"])
    [sent] = updates(bot)
    assert (sent.state, sent.page_incident_id) == ("sent", created["id"])
    assert [e.kind for e in bot.events() if "status_page" in e.kind] == [
        "incident.status_page_requested", "incident.status_page_confirmed", "incident.status_page_sent"]
    shown = slash(bot, "/incident", "show INC-1")
    assert f"status page sent by warroom: {SLOW}" in shown and f"status page requested by <@U0COMMANDER>: {SLOW}" in shown


def test_later_updates_patch_the_page_incident_in_order(bot: Harness, statuspage: StatuspageStandin) -> None:
    declare(bot)
    ask(bot, f"INC-1 investigating {SLOW}")
    first = updates(bot)[-1].id
    ask(bot, "INC-1 identified A bad deploy; rolling back")
    second = updates(bot)[-1].id
    confirm(bot, update_id=first)
    confirm(bot, update_id=second)
    assert send(bot) == 2
    post, patch = statuspage.calls
    [page_incident] = statuspage.incidents
    assert post.method == "POST"
    assert (patch.method, patch.path) == ("PATCH", f"/v1/pages/{PAGE}/incidents/{page_incident}")
    assert patch.json == {"incident": {"status": "identified", "body": "A bad deploy; rolling back"}}
    ask(bot, "INC-1 resolved Checkout is back to normal")
    confirm(bot, user=CX)
    send(bot)
    assert [c.method for c in statuspage.calls] == ["POST", "PATCH", "PATCH"]
    assert [u["status"] for u in statuspage.incidents[page_incident]["incident_updates"]] == [
        "resolved", "identified", "investigating"]


def test_a_double_or_simultaneous_confirm_sends_once(bot: Harness, statuspage: StatuspageStandin) -> None:
    declare(bot)
    ask(bot, f"INC-1 investigating {SLOW}")
    uid = str(updates(bot)[0].id)
    ts = ts_of(bot, f"statuspage:{uid}")
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: bot.block_actions("statuspage_confirm", uid, message_ts=ts), range(3)))
    assert all(r.status_code == 200 for r in results)
    replies = [r["text"] for r in bot.wait_for_responses(3)]
    assert sum(t.startswith("Confirmed") for t in replies) == 1
    assert sum("was already confirmed by <@U0COMMANDER>" in t for t in replies) == 2
    assert confirm(bot).startswith("That status-page update was already confirmed")
    send(bot)
    send(bot)
    assert len(statuspage.calls) == 1


def test_cancel_sends_nothing_ever(bot: Harness, statuspage: StatuspageStandin) -> None:
    declare(bot)
    ask(bot, f"INC-1 investigating {SLOW}")
    uid = updates(bot)[0].id
    assert "Only the commander" in click(bot, "statuspage_cancel", str(uid), user=ENG, ref=f"statuspage:{uid}")
    assert click(bot, "statuspage_cancel", str(uid), user=CX, ref=f"statuspage:{uid}") == \
        "You cancelled the status-page update; nothing was sent."
    assert "already cancelled" in confirm(bot)
    bot.deliver()
    bot.advance(timedelta(minutes=10))
    assert send(bot) == 0 and statuspage.calls == []
    assert message(bot, WAR_ROOM, ts_of(bot, f"statuspage:{uid}"))["text"].startswith(
        "Status page update for INC-1 (investigating) cancelled by <@U0CX>")


@pytest.mark.parametrize(("text", "user", "expected"), [
    ("INC-1 investigating " + SLOW, STRANGER, "Only the commander (<@U0COMMANDER>) or the customer-communications"),
    ("INC-1 investigating " + SLOW, ENG, "Only the commander"),
    ("INC-1 broken " + SLOW, COMMANDER, "`broken` is not a status page status"),
    ("INC-1 investigating", COMMANDER, "needs an incident id, a status and the public text"),
    ("", COMMANDER, "needs an incident id, a status and the public text"),
    ("INC-9 investigating " + SLOW, COMMANDER, "There is no INC-9"),
    ("nope investigating " + SLOW, COMMANDER, "is not an incident id"),
    ("INC-1 investigating <!channel> look", COMMANDER, "cannot mention people or channels"),
    ("INC-1 investigating ask <@U0EXEC>", COMMANDER, "cannot mention people or channels"),
    ("INC-1 investigating " + "x" * 1001, COMMANDER, "keep it to 1000"),
])
def test_bad_requests_store_post_and_send_nothing(bot: Harness, statuspage: StatuspageStandin, text: str, user: str,
                                                  expected: str) -> None:
    declare(bot)
    before = len(bot.outbox())
    out = ask(bot, text, user=user)
    assert expected in out
    assert "<!channel>" not in out and "<@U0EXEC>" not in out
    assert updates(bot) == [] and len(bot.outbox()) == before
    assert send(bot) == 0 and statuspage.calls == []


def test_bad_button_values(bot: Harness) -> None:
    for value, expected in [("abc", "not one warroom knows"), ("999", "not one of this launch")]:
        assert expected in click(bot, "statuspage_confirm", value)
        assert expected in click(bot, "statuspage_cancel", value)


@pytest.mark.no_status_page
def test_without_a_status_page_configured_says_how(bot: Harness) -> None:
    declare(bot)
    assert ask(bot, f"INC-1 investigating {SLOW}").startswith("The status page is not configured")
    assert updates(bot) == []


def test_a_401_is_reported_naming_the_variable_never_the_key(bot: Harness, statuspage: StatuspageStandin,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATUSPAGE_API_KEY", "a-revoked-key-9876543210")
    declare(bot)
    ask(bot, f"INC-1 investigating {SLOW}")
    confirm(bot)
    assert send(bot) == 1 and len(statuspage.calls) == 1  # a 401 is not retried
    bot.advance(timedelta(minutes=10))
    send(bot)
    assert len(statuspage.calls) == 1
    [failed] = [p for p in bot.posts(WAR_ROOM) if "FAILED" in p["text"]]
    assert "(HTTP 401: check STATUSPAGE_API_KEY); customers do not see it. <@U0CX> post it" in failed["text"]
    assert failed["reply_broadcast"] is True
    assert (updates(bot)[0].state, updates(bot)[0].error) == ("failed", "HTTP 401")
    everything = json.dumps(bot.posts()) + json.dumps([e.payload for e in bot.events()], default=str)
    assert "a-revoked-key-9876543210" not in everything and KEY not in everything


def test_5xx_is_retried_later_and_sent_once(bot: Harness, statuspage: StatuspageStandin) -> None:
    statuspage.answer_next(502, times=2, method="POST")
    declare(bot)
    ask(bot, f"INC-1 investigating {SLOW}")
    confirm(bot)
    # a 5xx may have landed: before the create is made again, the unresolved incidents are looked through
    assert send(bot) == 1 and [c.method for c in statuspage.calls] == ["POST", "GET", "POST"]
    assert any("Statuspage did not take INC-1's investigating update (HTTP 502); warroom tries again in 30s" in t
               for t in texts(bot))
    assert updates(bot)[0].state == "confirmed"
    bot.clock.advance(timedelta(seconds=30))
    assert send(bot) == 1 and send(bot) == 0
    assert [c.method for c in statuspage.calls] == ["POST", "GET", "POST", "GET", "POST"]
    assert len(statuspage.incidents) == 1 and updates(bot)[0].state == "sent"


def test_the_cx_holder_asks_and_confirms(bot: Harness, statuspage: StatuspageStandin) -> None:
    declare(bot)
    assert ask(bot, "INC-1 monitoring A fix is out; watching", user=CX).startswith("The public text is in")
    assert confirm(bot, user=CX).startswith("Confirmed")
    send(bot)
    assert statuspage.calls[0].json["incident"]["status"] == "monitoring"


def test_a_rehearsal_never_writes_to_the_public_page(standin: SlackStandin, database_url: str, config: Config,
                                                     clock: ManualClock, statuspage: StatuspageStandin) -> None:
    rehearsal = Harness(standin, database_url, config, clock, rehearsal=True)
    try:
        declare(rehearsal)
        assert ask(rehearsal, f"INC-1 investigating {SLOW}").startswith("A rehearsal never writes to the public")
        assert updates(rehearsal) == [] and statuspage.calls == []
    finally:
        rehearsal.close()


def test_config_errors_name_their_key_paths() -> None:
    from commands.config_file import ConfigError
    from tests.conftest import TEST_CONFIG

    with pytest.raises(ConfigError) as caught:
        parse_config({**TEST_CONFIG, "status_page": {"statuspage": {"page_id": "abc/../x", "api_key_env": 7}}})
    text = str(caught.value)
    assert "status_page.statuspage.page_id: 'abc/../x' is not a Statuspage page id" in text
    assert "status_page.statuspage.api_key_env: 7 is not an environment variable name" in text
    with pytest.raises(ConfigError, match="status_page.statuspage.page_id: is required"):
        parse_config({**TEST_CONFIG, "status_page": {"statuspage": {}}})


def test_help_lists_statuspage(bot: Harness) -> None:
    out = slash(bot, "/warroom", "help")
    assert "• `/statuspage` update the public status page for an incident, after a confirmation (commander, cx)" in out
    assert "/incident page INC-7 [role]" in slash(bot, "/incident", "nonsense INC-1")  # the usage after an error


@pytest.mark.short_timeout
def test_a_create_whose_answer_was_lost_is_looked_for_not_made_twice(bot: Harness, statuspage: StatuspageStandin) -> None:
    statuspage.create_delay = 2.0  # it lands, and answers after the client gave up
    declare(bot)
    ask(bot, f"INC-1 investigating {SLOW}")
    confirm(bot)
    assert send(bot) == 1
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in statuspage.calls] == [
        ("POST", "incidents"), ("GET", "unresolved")]
    [created] = statuspage.incidents.values()
    [sent] = updates(bot)
    assert (sent.state, sent.page_incident_id) == ("sent", created["id"])
    assert any(t.startswith(":globe_with_meridians: Status page updated for INC-1") for t in texts(bot))
    # the next update patches that one incident
    statuspage.create_delay = 0.0
    ask(bot, "INC-1 identified A bad deploy; rolling back")
    confirm(bot)
    send(bot)
    assert (statuspage.calls[-1].method, statuspage.calls[-1].path) == ("PATCH", f"/v1/pages/{PAGE}/incidents/{created['id']}")
    assert len(statuspage.incidents) == 1


@pytest.mark.short_timeout
def test_a_lost_create_not_found_is_made_again(bot: Harness, statuspage: StatuspageStandin) -> None:
    statuspage.answer_next(503, method="POST")  # refused before it landed: nothing to find, the create is made again
    declare(bot)
    ask(bot, f"INC-1 investigating {SLOW}")
    confirm(bot)
    send(bot)
    assert [c.method for c in statuspage.calls] == ["POST", "GET", "POST"]
    assert len(statuspage.incidents) == 1 and updates(bot)[0].state == "sent"
