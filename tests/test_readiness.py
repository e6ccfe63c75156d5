"""Readiness gates before T0 (`/ready`, seeds 002 and 004), through the real stack: the config's items,
reminders and overdue messages at their times on a frozen clock, owners followed at send time, the
`ready_done` button, T0 moved, the go/no-go held back by a critical item, a restart, replicas, bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from sqlmodel import select

from commands.config import Config, ConfigError, parse_config
from db.readiness import ReadinessItem
from tests.conftest import START, TEST_CONFIG
from tests.console_helpers import (
    COMMANDER,
    CX,
    ENG,
    EXEC,
    INJECTION,
    SCRIBE,
    STRANGER,
    click,
    decisions,
    outbox_count,
    refusals,
    slash,
    texts,
)
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
QA_REMINDER = START + timedelta(hours=12)  # T-48h less readiness_remind_before (12h)
QA_DUE = START + timedelta(days=1)


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


def about(bot: Harness, key: str) -> list[str]:
    return [t for t in texts(bot) if f"*{key}*" in t]


def buttons(post: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for b in post.get("blocks") or [] if b["type"] == "actions"
            for e in b["elements"]]


def run_to(bot: Harness, when: Any) -> None:
    bot.advance(when - bot.clock.now())


def test_ready_lists_every_item_with_its_state_owner_due_and_critical(bot: Harness) -> None:
    text = slash(bot, "/ready", user=STRANGER)
    lines = text.splitlines()
    assert lines[0] == "Readiness: 0/3 ready"
    qa = next(line for line in lines if "qa-evidence" in line)
    assert "pending" in qa and "critical" in qa and "T-48h" in qa and "Fri 17 Oct 10:00 PDT" in qa and "<@U0QA>" in qa
    facilitators = next(line for line in lines if "facilitators" in line)
    assert "critical" not in facilitators and "T-60h" in facilitators
    slash(bot, "/ready", "done qa-evidence https://ci.example/run/42", user=QA)
    assert slash(bot, "/ready", "list").splitlines()[0] == "Readiness: 1/3 ready"


def test_reminder_then_overdue_at_their_times_each_once(bot: Harness) -> None:
    slash(bot, "/ready")  # the launch, its gates and their timers
    run_to(bot, QA_REMINDER - timedelta(seconds=1))
    assert about(bot, "qa-evidence") == []
    bot.advance(timedelta(seconds=1))
    [reminder] = [p for p in bot.posts("C0WARROOM") if "*qa-evidence*" in p["text"]]
    assert "Reminder" in reminder["text"] and "<@U0QA>" in reminder["text"] and "due in 12h" in reminder["text"]
    assert buttons(reminder) == [("ready_done", "qa-evidence")]
    [Block.parse(b) for b in reminder["blocks"]]  # type: ignore[func-returns-value]
    [facilitators] = about(bot, "facilitators")  # due at the same moment: overdue, not critical
    assert "overdue" in facilitators and "<@U0CX>" in facilitators and "<@U0COMMANDER>" not in facilitators
    run_to(bot, QA_DUE - timedelta(seconds=1))
    assert len(about(bot, "qa-evidence")) == 1
    bot.advance(timedelta(seconds=1))
    overdue = about(bot, "qa-evidence")[-1]
    assert "overdue" in overdue and "qa-evidence" in overdue and "<@U0QA>" in overdue and "<@U0COMMANDER>" in overdue
    bot.advance(timedelta(hours=6))
    assert len(about(bot, "qa-evidence")) == 2 and len(about(bot, "facilitators")) == 1
    assert [e.payload["key"] for e in bot.events("readiness.overdue")] == ["facilitators", "qa-evidence"]


def test_the_owner_is_looked_up_when_the_reminder_is_sent(bot: Harness) -> None:
    slash(bot, "/ready")
    slash(bot, "/role", "qa <@U0NEWQA|dana>")
    run_to(bot, QA_REMINDER)
    [reminder] = about(bot, "qa-evidence")
    assert "<@U0NEWQA>" in reminder and "<@U0QA>" not in reminder
    refused = bot.slash("/ready", "done qa-evidence", user=QA).json()["text"]  # no longer the qa holder
    assert "Only the owner" in refused and items(bot)["qa-evidence"].state == "pending"
    assert "now ready" in slash(bot, "/ready", "done qa-evidence", user="U0NEWQA")


def test_ready_done_button_on_the_reminder_by_the_owner_stops_the_overdue(bot: Harness) -> None:
    slash(bot, "/ready")
    run_to(bot, QA_REMINDER)
    assert "Only the owner" in click(bot, "ready_done", "qa-evidence", user=ENG)
    assert items(bot)["qa-evidence"].state == "pending"
    assert "now ready" in click(bot, "ready_done", "qa-evidence", user=QA)
    bot.deliver()
    item = items(bot)["qa-evidence"]
    assert item.state == "ready" and item.ready_at == QA_REMINDER and item.changed_by == QA
    assert "is *ready*" in about(bot, "qa-evidence")[-1]
    run_to(bot, QA_DUE + timedelta(hours=1))
    assert not any("overdue" in t for t in about(bot, "qa-evidence"))
    assert "not one warroom knows" in click(bot, "ready_done", "", user=QA)
    assert "no readiness item" in click(bot, "ready_done", "nope", user=QA)


def test_states_by_the_owner_or_the_commander_and_refused_for_others(bot: Harness) -> None:
    assert "Only the owner" in bot.slash("/ready", "blocked embed-token waiting on Shopify", user=CX).json()["text"]
    assert refusals(bot)[-1].payload["command"] == "/ready blocked"
    assert "now blocked" in slash(bot, "/ready", "blocked embed-token waiting on Shopify", user=REL)
    assert "now at_risk" in slash(bot, "/ready", "risk embed-token partner slow", user=COMMANDER)
    assert "now ready" in slash(bot, "/ready", "done embed-token token in vault", user=REL)
    assert "now pending" in slash(bot, "/ready", "reopen embed-token", user=COMMANDER)
    bot.deliver()
    kinds = [e.kind for e in bot.events() if e.kind.startswith("readiness.")]
    assert kinds == ["readiness.blocked", "readiness.at_risk", "readiness.ready", "readiness.pending"]
    assert [e.actor for e in bot.events() if e.kind.startswith("readiness.")] == [REL, COMMANDER, REL, COMMANDER]
    posted = about(bot, "embed-token")
    assert "*blocked*" in posted[0] and "waiting on Shopify" in posted[0] and "*at risk*" in posted[1]
    assert "reopened" in posted[3] and items(bot)["embed-token"].ready_at is None


def test_ready_add_by_commander_or_scribe_only(bot: Harness) -> None:
    before = outbox_count(bot)
    refused = bot.slash("/ready", "add Runbook reviewed | owner: eng_oncall | due: T-36h", user=ENG).json()["text"]
    assert "commander" in refused and outbox_count(bot) == before
    assert slash(bot, "/ready", "add Runbook reviewed | owner: eng_oncall | due: T-36h | critical",
                 user=SCRIBE) == "Added R-1; the war room has been told."
    assert "Added R-2" in slash(bot, "/ready", "add Status page drafted | owner: @U0CX | due: 2025-10-18T12:00:00Z")
    assert "Added R-3" in slash(bot, "/ready", "add Comms drafted | owner: @cx | due: T-40h")
    bot.deliver()
    r1 = items(bot)["R-1"]
    assert r1.critical and r1.owner == "eng_oncall" and r1.due_label == "T-36h"
    assert r1.due_at == T0 - timedelta(hours=36) and r1.created_by == SCRIBE
    added = about(bot, "R-1")[0]
    assert "added by <@U0SCRIBE>" in added and "<@U0ENG>" in added and "critical" in added
    assert "done R-1" not in slash(bot, "/ready", "done r-1 runbook link", user=ENG)  # ids in any case
    assert items(bot)["R-1"].state == "ready"
    assert items(bot)["R-2"].owner == CX and items(bot)["R-3"].owner == "cx"


@pytest.mark.parametrize(("text", "says"), [
    ("done R-9", "no readiness item `R-9`"),
    ("done", "needs an item id"),
    ("blocked qa-evidence", "needs a reason"),
    ("reopen qa-evidence now please", "takes only an item id"),
    ("frobnicate qa-evidence", "not a /ready subcommand"),
    ("add Runbook | owner: eng_oncall | due: tomorrowish", "`tomorrowish` is not a due time"),
    ("add Runbook | owner: eng_oncall | due: 2025-10-16T09:00:00Z", "already past"),
    ("add Runbook | owner: eng_oncall | due: T-4d", "already past"),
    ("add Runbook | due: T-24h", "Say who owns it"),
    ("add Runbook | owner: eng_oncall", "Say when it is due"),
    ("add Runbook | owner: eng_oncal | due: T-24h", "did you mean `eng_oncall`"),
    ("add Runbook | owner: astronaut | due: T-24h", "not a Slack user like @alice or a launch role"),
    ("add Runbook | ownr: eng_oncall | due: T-24h", "is not one of"),
    ("add Runbook | owner: eng_oncall | due: T-24h | critical yes", "is not one of"),
    ("add | owner: eng_oncall | due: T-24h", "needs text"),
    ("add " + "x" * 501 + " | owner: eng_oncall | due: T-24h", "501 characters"),
    ("done qa-evidence " + "e" * 1001, "1001 characters"),
    ("list everything", "takes nothing"),
])
def test_bad_input_is_refused_with_a_clear_reply_and_nothing_changes(bot: Harness, text: str, says: str) -> None:
    slash(bot, "/ready")
    before = (outbox_count(bot), len(bot.events()), len(items(bot)))
    answer = slash(bot, "/ready", text, user=COMMANDER)
    assert says in answer and "Usage: /ready" in answer
    assert (outbox_count(bot), len(bot.events()), len(items(bot))) == before
    assert all(i.state == "pending" for i in items(bot).values())


def test_user_text_never_pings_or_links(bot: Harness) -> None:
    slash(bot, "/ready", f"add {INJECTION} | owner: cx | due: T-30h")
    slash(bot, "/ready", f"blocked R-1 {INJECTION}", user=CX)
    bot.deliver()
    for text in about(bot, "R-1"):
        assert "<!channel>" not in text and "<@U0EXEC>" not in text and "<https://" not in text
        assert "&lt;!channel&gt;" in text
    assert "<!channel>" not in slash(bot, "/ready") and "<@U0EXEC>" not in slash(bot, "/ready")


def test_t0_moved_moves_the_t_offset_dues_and_their_reminders(bot: Harness) -> None:
    slash(bot, "/ready", "add Press kit | owner: cx | due: 2025-10-18T17:00:00Z")  # fixed: does not move
    later = T0 + timedelta(days=1)
    slash(bot, "/launch", f"t0 {later.isoformat()}")
    bot.deliver()
    moved = next(t for t in texts(bot) if "T0 moved, so the readiness dues" in t)
    assert "*qa-evidence*" in moved and "Sat 18 Oct 10:00 PDT" in moved and "Press kit" not in moved
    now = items(bot)
    assert now["qa-evidence"].due_at == later - timedelta(hours=48)
    assert now["R-1"].due_at == START + timedelta(days=2)
    run_to(bot, QA_REMINDER + timedelta(hours=1))  # the old reminder time passes quietly
    assert about(bot, "qa-evidence") == [moved]
    run_to(bot, QA_REMINDER + timedelta(days=1))
    assert len(about(bot, "qa-evidence")) == 2 and "Reminder" in about(bot, "qa-evidence")[1]
    assert [e.payload["key"] for e in bot.events("readiness.due_moved")] == ["facilitators", "qa-evidence",
                                                                             "embed-token"]


def test_gonogo_lists_critical_items_and_closes_no_go_while_one_is_not_ready(bot: Harness) -> None:
    slash(bot, "/ready", "done qa-evidence https://ci.example/42", user=QA)
    slash(bot, "/ready", "blocked embed-token partner outage", user=REL)
    slash(bot, "/gonogo")
    bot.deliver()
    poll = next(t for t in texts(bot) if t.startswith("*Go/No-Go*"))
    assert "Critical readiness (1/2 ready)" in poll and "qa-evidence" in poll and "*ready*" in poll
    assert "embed-token" in poll and "*blocked*" in poll and "facilitators" not in poll
    for user in (COMMANDER, ENG, EXEC):
        click(bot, "gonogo_vote", "go", user=user)
    bot.deliver()
    [decision] = decisions(bot, "gonogo")
    assert decision.text.startswith("NO-GO") and "embed-token (blocked)" in decision.text
    result = next(t for t in texts(bot) if t.startswith("*Go/No-Go decision"))
    assert "NO-GO" in result and "*embed-token* (blocked)" in result
    slash(bot, "/ready", "done embed-token token delivered", user=REL)
    slash(bot, "/gonogo")
    for user in (COMMANDER, ENG, EXEC):
        click(bot, "gonogo_vote", "go", user=user)
    assert decisions(bot, "gonogo")[-1].text.startswith("GO:")


def test_checkpoint_and_heartbeat_mention_critical_items_not_ready_before_t0(bot: Harness) -> None:
    slash(bot, "/ready", "done qa-evidence ok", user=QA)
    slash(bot, "/heartbeat", user=CX)
    slash(bot, "/checkpoint", "pre-launch")
    bot.deliver()
    heartbeat = next(t for t in texts(bot) if t.startswith("Status Update"))
    checkpoint = next(t for t in texts(bot) if "*Checkpoint*" in t)
    for text in (heartbeat, checkpoint):
        assert "Readiness: 1/3 ready; critical not ready before T0: *embed-token* pending" in text
        assert "qa-evidence" not in text


def test_a_restart_between_reminder_and_due_posts_the_overdue_once_across_replicas(bot: Harness) -> None:
    slash(bot, "/ready")
    run_to(bot, QA_REMINDER)
    assert len(about(bot, "qa-evidence")) == 1
    bot.close()
    bot.clock.advance(timedelta(hours=13))  # down across the due time
    first = Harness(bot.standin, bot.env.database_url, bot.config, bot.clock)
    second = Harness(bot.standin, bot.env.database_url, bot.config, bot.clock)
    try:
        first.tick() + second.tick()
        first.deliver() + second.deliver()
        second.tick()
        second.deliver()
        posted = about(first, "qa-evidence")
        assert len(posted) == 2 and "overdue" in posted[1] and "<@U0COMMANDER>" in posted[1]
        assert len(first.events("readiness.overdue")) == 2  # qa-evidence and facilitators, once each
    finally:
        first.close()
        second.close()


def test_ready_add_with_no_text_opens_a_form_and_its_submission_adds(bot: Harness) -> None:
    assert bot.slash("/ready", "add", user=SCRIBE).status_code == 200
    [opened] = bot.standin.attempts("views.open")
    assert opened.response["ok"] and opened.args["view"]["callback_id"] == "readiness_add"
    bad = submit(bot, {"text": "Runbook", "owner": "", "due": "tomorrowish"})
    assert bad.json()["response_action"] == "errors"
    assert set(bad.json()["errors"]) == {"owner", "due"}
    assert submit(bot, {"text": "Runbook reviewed", "owner": "eng_oncall", "due": "T-30h"}, critical="yes").status_code == 200
    item = items(bot)["R-1"]
    assert item.critical and item.owner == "eng_oncall" and item.created_by == SCRIBE


def submit(bot: Harness, values: dict[str, str], *, critical: str | None = None) -> Any:
    import json
    from urllib.parse import urlencode

    state = {k: {"value": {"type": "plain_text_input", "value": v}} for k, v in values.items()}
    if critical:
        state["critical"] = {"value": {"type": "static_select", "selected_option": {"value": critical}}}
    payload = {"type": "view_submission", "team": {"id": "T0STANDIN", "domain": "standin"},
               "user": {"id": SCRIBE, "username": "scribe", "team_id": "T0STANDIN"}, "api_app_id": "A0WARROOM",
               "token": "legacy", "trigger_id": f"trigger.view.{len(values)}.{critical}",
               "view": {"id": "V0001", "type": "modal", "callback_id": "readiness_add",
                        "state": {"values": state}, "private_metadata": "", "hash": "h"}}
    return bot.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


@pytest.mark.parametrize(("gate", "path"), [
    ({"due": "tomorrowish"}, "readiness[0].due: 'tomorrowish' is not a due time"),
    ({"owner": "Bob Smith"}, "readiness[0].owner: 'Bob Smith' is not a role name"),
    ({"id": "R-3"}, "readiness[0].id: 'R-3' is not an item id"),
    ({"critical": "yes"}, "readiness[0].critical: 'yes' is not true or false"),
    ({"text": "x" * 501}, "readiness[0].text: is 501 characters"),
    ({"colour": "red"}, "readiness[0].colour: unknown key"),
])
def test_config_errors_name_their_key_path(gate: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"readiness": [{**READINESS[0], **gate}]})
    assert any(e.startswith(path) for e in raised.value.errors), raised.value.errors
    with pytest.raises(ConfigError, match="used by two items"):
        parse_config({"readiness": [READINESS[0], READINESS[0]]})
    with pytest.raises(ConfigError, match=r"readiness_remind_before: 'soon' is not a duration"):
        parse_config({"readiness_remind_before": "soon"})
    assert parse_config({}).readiness == ()
