"""Paging through PagerDuty's Events API v2, through the real stack, against a stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.outside import lease_for
from bot.pagerduty import send_event
from bot.scheduler import run_outside_calls
from commands.config import Config, parse_config
from commands.paging import PAGE_KIND, claim_page
from db.models import AuditEvent, OutboxMessage, Timer
from tests.console_helpers import COMMANDER, ENG, STRANGER, WAR_ROOM, slash, texts
from tests.harness import Harness
from tests.outside_standins import PD_THROTTLED, PagerDutyStandin
from tests.standin import SlackStandin

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"  # 32 characters, as PagerDuty's are


@pytest.fixture
def pagerduty(monkeypatch: pytest.MonkeyPatch) -> Iterator[PagerDutyStandin]:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", KEY)
    with PagerDutyStandin(KEY) as server:
        yield server


@pytest.fixture
def config(request: pytest.FixtureRequest, pagerduty: PagerDutyStandin) -> Config:
    from tests.conftest import TEST_CONFIG

    raw = dict(TEST_CONFIG)
    if request.node.get_closest_marker("no_paging") is None:
        raw["paging"] = {"pagerduty": {"url": pagerduty.url, "retries": 1},
                         "page_roles": ["eng_oncall", "devops"]}
    return parse_config(raw)


def declare(bot: Harness, text: str = "sev1 checkout 500s") -> None:
    assert "Declared INC-" in slash(bot, "/incident", text, user="U0SCRIBE")
    bot.deliver()


def send(bot: Harness) -> int:
    n = run_outside_calls(bot.runtime.dispatcher)
    bot.deliver()
    return n


def key_of(bot: Harness, number: int = 1) -> str:
    return f"warroom-{bot.incidents()[0].launch_id}-INC-{number}"


def thread_texts(bot: Harness) -> list[str]:
    return [p["text"] for p in bot.standin.thread_posts(WAR_ROOM)]


def test_acceptance_escalation_to_eng_oncall_triggers_once_and_ack_resolve_share_the_key(
        bot: Harness, pagerduty: PagerDutyStandin) -> None:
    declare(bot)
    bot.advance(timedelta(minutes=4, seconds=59))
    assert send(bot) == 0 and pagerduty.calls == []  # the commander's own five minutes page nobody
    bot.advance(timedelta(seconds=1))  # escalates to eng_oncall: a page role
    assert send(bot) == 1
    [trigger] = pagerduty.events()
    assert trigger["routing_key"] == KEY and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == key_of(bot)
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "warroom"
    assert "INC-1" in trigger["payload"]["summary"] and "checkout 500s" in trigger["payload"]["summary"]
    assert trigger["payload"]["custom_details"]["role"] == "eng_oncall"
    assert any("INC-1 paged through PagerDuty (eng_oncall: <@U0ENG>)" in t for t in thread_texts(bot))
    bot.advance(timedelta(minutes=5))  # on to exec: not a page role, and the incident was paged already
    assert send(bot) == 0 and len(pagerduty.calls) == 1
    assert slash(bot, "/incident", "ack INC-1", user=ENG) == "You acknowledged INC-1."
    assert send(bot) == 1
    assert slash(bot, "/incident", "resolve INC-1 fixed", user=COMMANDER) == "You resolved INC-1."
    assert send(bot) == 1 and send(bot) == 0
    events = pagerduty.events()
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {key_of(bot)}
    assert [e.payload["action"] for e in bot.events("incident.paged")] == ["trigger", "acknowledge", "resolve"]
    assert all(e.incident_id == bot.incidents()[0].id for e in bot.events("incident.paged"))  # on its timeline


def test_an_incident_never_paged_sends_no_acknowledge_or_resolve(bot: Harness, pagerduty: PagerDutyStandin) -> None:
    declare(bot)
    slash(bot, "/incident", "ack INC-1", user=COMMANDER)
    slash(bot, "/incident", "resolve INC-1", user=COMMANDER)
    bot.advance(timedelta(minutes=30))
    assert send(bot) == 0 and pagerduty.calls == []


@pytest.mark.parametrize(("severity", "expected"), [("sev1", "critical"), ("sev2", "error"), ("sev3", "warning"),
                                                     ("sev4", "info")])
def test_incident_page_pages_now_with_the_severity_pagerduty_names(
        bot: Harness, pagerduty: PagerDutyStandin, severity: str, expected: str) -> None:
    declare(bot, f"{severity} search is slow")
    out = slash(bot, "/incident", "page INC-1 devops", user=COMMANDER)
    assert out == "Paging PagerDuty for INC-1 (devops: <@U0DEVOPS>); the outcome is posted in its thread."
    assert send(bot) == 1
    [event] = pagerduty.events()
    assert event["payload"]["severity"] == expected and event["dedup_key"] == key_of(bot)
    assert event["payload"]["custom_details"]["paged_user"] == "U0DEVOPS"


def test_incident_page_without_a_role_names_the_first_page_role_held(bot: Harness, pagerduty: PagerDutyStandin) -> None:
    declare(bot)
    assert "(eng_oncall: <@U0ENG>)" in slash(bot, "/incident", "page INC-1")
    assert send(bot) == 1 and pagerduty.events()[0]["payload"]["custom_details"]["role"] == "eng_oncall"


def test_incident_page_refusals_store_and_send_nothing(bot: Harness, pagerduty: PagerDutyStandin) -> None:
    declare(bot)
    before = len(bot.outbox())
    assert slash(bot, "/incident", "page INC-1", user=STRANGER).startswith("Only the owner of INC-1")
    assert "is not a launch role" in slash(bot, "/incident", "page INC-1 <!channel>")
    assert "&lt;!channel&gt;" in slash(bot, "/incident", "page INC-1 <!channel>")
    assert "There is no INC-9" in slash(bot, "/incident", "page INC-9")
    assert "needs an incident id" in slash(bot, "/incident", "page")
    slash(bot, "/incident", "resolve INC-1")
    assert "already resolved" in slash(bot, "/incident", "page INC-1")
    assert send(bot) == 0 and pagerduty.calls == []
    assert bot.events("incident.page_queued") == []
    assert len(bot.outbox()) == before + 2  # the resolution's thread reply and its message update only


@pytest.mark.no_paging
def test_incident_page_without_paging_configured_says_how(bot: Harness) -> None:
    declare(bot)
    assert slash(bot, "/incident", "page INC-1").startswith("Paging is not configured")
    bot.advance(timedelta(minutes=5))  # the escalation to eng_oncall pages nobody
    assert send(bot) == 0
    with bot.session() as s:
        assert s.exec(select(Timer).where(Timer.kind == PAGE_KIND)).all() == []


def test_a_crash_between_the_send_and_its_record_sends_again_with_the_same_key(
        bot: Harness, pagerduty: PagerDutyStandin) -> None:
    declare(bot)
    slash(bot, "/incident", "page INC-1 eng_oncall")
    dispatcher = bot.runtime.dispatcher
    with bot.session() as s:
        timer_id = s.exec(select(Timer.id).where(Timer.kind == PAGE_KIND)).one()
    pd = bot.config.paging.pagerduty
    assert pd is not None
    lease = lease_for(pd.timeout, pd.retries)
    claim = dispatcher.tick(lambda ctx: claim_page(ctx, timer_id, lease))
    assert claim is not None
    assert send_event(pd, claim.event).ok  # sent; the process dies before recording it
    assert send(bot) == 0 and len(pagerduty.calls) == 1  # leased: nobody sends it meanwhile
    bot.clock.advance(lease + timedelta(seconds=1))
    assert send(bot) == 1
    first, again = pagerduty.events()
    assert first == again and first["dedup_key"] == key_of(bot)  # PagerDuty de-duplicates the repeat
    assert len(bot.events("incident.paged")) == 1
    assert sum("paged through PagerDuty" in t for t in thread_texts(bot)) == 1
    assert send(bot) == 0 and len(pagerduty.calls) == 2


def test_a_400_is_reported_in_the_war_room_and_not_retried(bot: Harness, pagerduty: PagerDutyStandin) -> None:
    pagerduty.answer_next(400, {"status": "invalid event", "message": "Event object is invalid",
                              "errors": [f"routing_key {KEY} is not an integration key"]})
    declare(bot)
    slash(bot, "/incident", "page INC-1 eng_oncall")
    assert send(bot) == 1 and len(pagerduty.calls) == 1
    bot.advance(timedelta(minutes=30))
    send(bot)
    assert len(pagerduty.calls) == 1
    [failed] = [p for p in bot.posts(WAR_ROOM) if "PagerDuty refused" in p["text"]]
    assert failed["reply_broadcast"] is True  # in the thread and in the channel
    assert "HTTP 400: Event object is invalid; routing_key [redacted] is not an integration key" in failed["text"]
    assert "Nobody was paged: <@U0COMMANDER> reach <@U0ENG> another way" in failed["text"]
    assert KEY not in json.dumps(bot.posts()) and KEY not in json.dumps([e.payload for e in bot.events()])
    assert bot.events("incident.page_failed")[0].payload["status"] == 400


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_5xx_are_retried_within_the_call_and_later(bot: Harness, pagerduty: PagerDutyStandin,
                                                           status: int) -> None:
    pagerduty.answer_next(status, PD_THROTTLED if status == 429 else {}, times=3)
    declare(bot)
    slash(bot, "/incident", "page INC-1 eng_oncall")
    assert send(bot) == 1 and len(pagerduty.calls) == 2  # retries: 1
    assert [t for t in thread_texts(bot) if "did not take" in t] == [
        f":hourglass: PagerDuty did not take INC-1's trigger (HTTP {status}); warroom tries again in 30s and keeps trying."]
    assert send(bot) == 0  # not before its backoff
    bot.clock.advance(timedelta(seconds=30))
    assert send(bot) == 1 and len(pagerduty.calls) == 4
    assert [c.json["dedup_key"] for c in pagerduty.calls] == [key_of(bot)] * 4
    assert len(bot.events("incident.paged")) == 1 and bot.events("incident.page_failed") == []
    assert any("paged through PagerDuty" in t and "after 2 attempts" in t for t in thread_texts(bot))


def test_an_acknowledge_waits_for_its_trigger(bot: Harness, pagerduty: PagerDutyStandin) -> None:
    pagerduty.answer_next(500, times=2)
    declare(bot)
    slash(bot, "/incident", "page INC-1 eng_oncall")
    send(bot)  # the trigger failed twice: due again in 30 s
    slash(bot, "/incident", "ack INC-1", user=ENG)
    assert send(bot) == 0  # the acknowledge is due, but waits for the trigger
    bot.clock.advance(timedelta(seconds=30))
    assert send(bot) == 2
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "trigger", "trigger", "acknowledge"]


def test_a_missing_routing_key_is_reported_without_any_call(bot: Harness, pagerduty: PagerDutyStandin,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY")
    declare(bot)
    slash(bot, "/incident", "page INC-1 eng_oncall")
    send(bot)
    assert pagerduty.calls == []
    assert any("PagerDuty refused INC-1's trigger* (PAGERDUTY_ROUTING_KEY is not set)" in t for t in texts(bot))


def test_the_routing_key_is_never_logged_stored_or_exported(bot: Harness, pagerduty: PagerDutyStandin,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pagerduty.answer_next(503)
    declare(bot)
    slash(bot, "/incident", "page INC-1 eng_oncall")
    send(bot)
    slash(bot, "/incident", "ack INC-1", user=ENG)
    send(bot)
    slash(bot, "/export", "ndjson")
    bot.deliver()
    assert len(pagerduty.calls) == 3
    with bot.session() as s:
        stored = json.dumps([[e.kind, e.payload] for e in s.exec(select(AuditEvent)).all()]
                            + [t.payload for t in s.exec(select(Timer)).all()]
                            + [m.payload for m in s.exec(select(OutboxMessage)).all()], default=str)
    [export] = bot.standin.uploads.values()
    assert b"incident.paged" in export and KEY.encode() not in export
    assert "incident.paged" in stored and KEY not in stored
    assert "outside call attempt failed" in caplog.text and KEY not in caplog.text


def test_a_rehearsal_pages_nobody_and_says_what_it_would_send(standin: SlackStandin, database_url: str, config: Config,
                                                              clock: ManualClock, pagerduty: PagerDutyStandin) -> None:
    rehearsal = Harness(standin, database_url, config, clock, rehearsal=True)
    try:
        declare(rehearsal)
        rehearsal.advance(timedelta(minutes=5))
        slash(rehearsal, "/incident", "page INC-1 devops")
        assert send(rehearsal) == 0 and pagerduty.calls == []
        said = [t for t in thread_texts(rehearsal) if "PagerDuty is not called" in t]
        assert said == ["[REHEARSAL] :pager: Rehearsal: PagerDuty is not called; a live launch would send INC-1's "
                        "trigger now (eng_oncall: <@U0ENG>).",
                        "[REHEARSAL] :pager: Rehearsal: PagerDuty is not called; a live launch would send INC-1's "
                        "trigger now (devops: <@U0DEVOPS>)."]
        assert len(rehearsal.events("incident.page_rehearsed")) == 2
    finally:
        rehearsal.close()


def test_config_errors_name_their_key_paths() -> None:
    from commands.config_file import ConfigError
    from tests.conftest import TEST_CONFIG

    with pytest.raises(ConfigError) as caught:
        parse_config({**TEST_CONFIG, "paging": {"pagerduty": {"url": "ftp://x", "routing_key_env": "my key"},
                                                "page_roles": ["oncall"]}})
    text = str(caught.value)
    assert "paging.pagerduty.url: 'ftp://x' is not an http(s) URL" in text
    assert "paging.pagerduty.routing_key_env: 'my key' is not an environment variable name" in text
    assert "'oncall' is not a role under roles:" in text and "paging.page_roles" in text
    defaults = parse_config({**TEST_CONFIG, "paging": {"pagerduty": None, "page_roles": ["devops"]}})
    assert defaults.paging.pagerduty is None and defaults.paging.page_roles == ("devops",)
    pd = parse_config({**TEST_CONFIG, "paging": {"pagerduty": {}}}).paging.pagerduty
    assert pd is not None and (pd.url, pd.routing_key_env) == ("https://events.pagerduty.com/v2/enqueue",
                                                              "PAGERDUTY_ROUTING_KEY")


def test_keys_named_like_keys_are_redacted_from_logs() -> None:
    import io

    from bot import logs
    from bot.config import Env

    env = Env.from_environ({"PAGERDUTY_ROUTING_KEY": KEY, "MY_STATUSPAGE_KEY": "sp-0123456789", "PORT": "3000"})
    assert KEY in env.secrets and "sp-0123456789" in env.secrets and "3000" not in env.secrets
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("INFO", env.secrets, stream=out)
        logging.getLogger("warroom.test").warning("sent %s with sp-0123456789", KEY)
    finally:
        root.handlers[:], root.level = handlers, level
    assert "[redacted]" in out.getvalue() and KEY not in out.getvalue() and "sp-0123456789" not in out.getvalue()
