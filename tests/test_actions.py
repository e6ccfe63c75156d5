"""Follow-up action items (`/action`, seed 002: "action items have clear owners and due dates") and the
record of readiness and action items in the exports (ndjson, csv, md), through the real stack."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from commands.config import Config
from db.readiness import ActionItem
from tests.conftest import START
from tests.console_helpers import (
    COMMANDER,
    CX,
    ENG,
    INJECTION,
    SCRIBE,
    STRANGER,
    outbox_count,
    refusals,
    slash,
    texts,
)
from tests.harness import Harness
from tests.test_export import export_via_cli
from tests.test_readiness import QA, T0, readiness_config

NASTY = 'Fix the "retry" storm, then\nwrite it up, with numbers'


@pytest.fixture
def config() -> Config:
    return readiness_config()


def actions(bot: Harness) -> list[ActionItem]:
    with bot.session() as s:
        return list(s.exec(select(ActionItem).order_by(ActionItem.number)).all())


def about(bot: Harness, number: int) -> list[str]:
    return [t for t in texts(bot) if f"*A-{number}*" in t]


def test_anyone_adds_an_action_item_linked_to_a_named_incident(bot: Harness) -> None:
    slash(bot, "/incident", "sev2 checkout 500s")
    answer = slash(bot, "/action", "Write up INC-1 for the retro | owner: @U0ENG | due: 2d", user=STRANGER)
    assert answer == "Added A-1; the war room has been told."
    assert "Added A-2" in slash(bot, "/action", "Refresh job aids | owner: cx | due: T+48h", user=CX)
    bot.deliver()
    first, second = actions(bot)
    assert first.incident_number == 1 and first.owner == ENG and first.due_at == START + timedelta(days=2)
    assert first.created_by == STRANGER and first.state == "open"
    assert second.owner == "cx" and second.due_label == "T+48h" and second.due_at == T0 + timedelta(hours=48)
    posted = about(bot, 1)[0]
    assert "added by <@U0STRANGER>" in posted and "<@U0ENG>" in posted and "(INC-1)" in posted
    assert [e.payload["number"] for e in bot.events("action.added")] == [1, 2]


def test_list_and_list_mine(bot: Harness) -> None:
    slash(bot, "/action", "Refresh job aids | owner: cx | due: 3d")
    slash(bot, "/action", "Archive recordings | owner: <@U0SCRIBE|sam> | due: 1d12h")
    listed = slash(bot, "/action", "list", user=STRANGER)
    assert listed.splitlines()[0] == "*Action items: 2 open of 2*" and "A-1" in listed and "A-2" in listed
    mine = slash(bot, "/action", "list mine", user=CX)
    assert "A-1" in mine and "A-2" not in mine and "you own" in mine
    assert "No action items of yours" in slash(bot, "/action", "list mine", user=STRANGER)


def test_done_by_the_owner_or_the_commander_only(bot: Harness) -> None:
    slash(bot, "/action", "Refresh job aids | owner: cx | due: 3d")
    slash(bot, "/action", "Archive recordings | owner: scribe | due: 3d")
    before = outbox_count(bot)
    refused = bot.slash("/action", "done A-1", user=ENG).json()["text"]
    assert "Only the owner of A-1" in refused and outbox_count(bot) == before
    assert refusals(bot)[-1].payload["command"] == "/action done"
    assert slash(bot, "/action", "done A-1 shared in #ops", user=CX) == "A-1 is done; the war room has been told."
    assert "A-2 is done" in slash(bot, "/action", "done 2", user=COMMANDER)
    assert "already done" in slash(bot, "/action", "done A-1", user=CX)
    bot.deliver()
    first = actions(bot)[0]
    assert first.state == "done" and first.done_by == CX and first.note == "shared in #ops"
    assert "is done (<@U0CX>)" in about(bot, 1)[-1]


def test_an_open_item_is_reminded_at_its_due_time_once_and_a_done_one_is_not(bot: Harness) -> None:
    slash(bot, "/action", "Refresh job aids | owner: cx | due: 2h")
    slash(bot, "/action", "Archive recordings | owner: scribe | due: 2h")
    slash(bot, "/role", "cx <@U0NEWCX>")  # the holder at the due time is the one told
    slash(bot, "/action", "done A-2", user=SCRIBE)
    bot.advance(timedelta(hours=1, minutes=59))
    assert not any("due now" in t for t in texts(bot))
    bot.advance(timedelta(minutes=1))
    bot.advance(timedelta(hours=3))
    due = [t for t in texts(bot) if "due now" in t]
    assert len(due) == 1 and "A-1" in due[0] and "due" in due[0] and "<@U0NEWCX>" in due[0]
    assert [e.payload["number"] for e in bot.events("action.due")] == [1]


def test_t0_moved_moves_t_offset_action_dues(bot: Harness) -> None:
    slash(bot, "/action", "Stakeholder summary | owner: cx | due: T+24h")
    slash(bot, "/action", "Fixed date | owner: cx | due: 2d")
    later = T0 + timedelta(hours=6)
    slash(bot, "/launch", f"t0 {later.isoformat()}")
    first, second = actions(bot)
    assert first.due_at == later + timedelta(hours=24) and second.due_at == START + timedelta(days=2)
    bot.deliver()
    assert "moved with T0" in about(bot, 1)[-1]


@pytest.mark.parametrize(("text", "says"), [
    ("Write up | due: 2d", "Say who owns it"),
    ("Write up | owner: cx", "Say when it is due"),
    ("Write up | owner: cx | due: tomorrowish", "`tomorrowish` is not a due time"),
    ("Write up | owner: cx | due: 2025-10-15T10:00:00Z", "already past"),
    ("Write up | owner: cx | due: 400d", "is not a due time"),
    ("Write up | owner: astronaut | due: 2d", "not a Slack user like @alice or a launch role"),
    ("Write up | owner: cx | due: 2d | critical", "is not one of"),
    ("Write up INC-9 | owner: cx | due: 2d", "There is no INC-9"),
    ("x" * 501 + " | owner: cx | due: 2d", "501 characters"),
    ("done A-7", "There is no A-7"),
    ("done", "needs an action item id"),
])
def test_bad_input_is_refused_and_nothing_changes(bot: Harness, text: str, says: str) -> None:
    slash(bot, "/ready")
    before = (outbox_count(bot), len(bot.events()))
    answer = slash(bot, "/action", text)
    assert says in answer and "Usage: /action" in answer
    assert (outbox_count(bot), len(bot.events())) == before and actions(bot) == []


def test_action_text_never_pings(bot: Harness) -> None:
    slash(bot, "/action", f"{INJECTION} | owner: cx | due: 1d")
    bot.deliver()
    [posted] = about(bot, 1)
    assert "<!channel>" not in posted and "<@U0EXEC>" not in posted and "&lt;!channel&gt;" in posted


def test_action_with_no_text_opens_a_form_and_its_submission_adds(bot: Harness) -> None:
    assert bot.slash("/action", "", user=CX).status_code == 200
    [opened] = bot.standin.attempts("views.open")
    assert opened.response["ok"] and opened.args["view"]["callback_id"] == "action_add"
    bad = bot.view_submission("action_add", {"text": "Write up INC-4", "owner": "cx", "due": "yesterday"}, user=CX)
    assert set(bad.json()["errors"]) == {"due"}
    ok = bot.view_submission("action_add", {"text": NASTY, "owner": "cx", "due": "2d"}, user=CX)
    assert ok.status_code == 200 and actions(bot)[0].text == NASTY


def a_record(bot: Harness) -> None:
    slash(bot, "/ready", "done qa-evidence https://ci.example/run/42, all green", user=QA)
    slash(bot, "/ready", f"add {NASTY.replace(chr(10), ' ')} | owner: cx | due: T-30h | critical", user=SCRIBE)
    slash(bot, "/action", f"{NASTY} | owner: cx | due: 2d", user=CX)
    slash(bot, "/action", "Archive recordings | owner: scribe | due: T+24h")
    slash(bot, "/action", "done A-2", user=SCRIBE)


def test_the_exports_carry_readiness_and_action_items(bot: Harness, tmp_path: Path) -> None:
    a_record(bot)
    lines = [json.loads(line) for line in export_via_cli(bot, "ndjson", tmp_path).splitlines()]
    kinds = [line["kind"] for line in lines if line["source"] == "audit"]
    assert kinds == ["readiness.ready", "readiness.added", "action.added", "action.added", "action.done"]
    ready = next(line for line in lines if line["kind"] == "readiness.ready")
    assert ready["actor"] == QA and ready["payload"]["key"] == "qa-evidence" and ready["ts"].endswith("Z")
    rows = list(csv.DictReader(io.StringIO(export_via_cli(bot, "csv", tmp_path), newline="")))
    by_id: dict[str, dict[str, Any]] = {r["id"]: r for r in rows}
    assert [r["record"] for r in rows] == ["readiness"] * 4 + ["action"] * 2
    assert by_id["qa-evidence"]["status"] == "ready" and by_id["qa-evidence"]["critical"] == "true"
    assert by_id["qa-evidence"]["note"] == "https://ci.example/run/42, all green" and by_id["qa-evidence"]["done"]
    assert by_id["A-1"]["summary"] == NASTY and by_id["A-1"]["owner"] == "cx" and by_id["A-1"]["status"] == "open"
    assert by_id["A-2"]["status"] == "done" and by_id["A-2"]["due_label"] == "T+24h"
    md = export_via_cli(bot, "md", tmp_path)
    readiness = md.split("## Readiness", 1)[1].split("## Action items", 1)[0]
    qa_row = next(line for line in readiness.splitlines() if line.startswith("| qa-evidence |"))
    assert "@U0QA (qa)" in qa_row and "| yes | ready |" in qa_row and "2025-10-16 10:00" in qa_row
    assert "Ready: 1/4." in readiness
    items = md.split("## Action items", 1)[1].split("## Open action items", 1)[0]
    a1 = next(line for line in items.splitlines() if line.startswith("| A-1 |"))
    assert "@U0CX (cx)" in a1 and "2025-10-18 10:00" in a1 and a1.rstrip().endswith("| open |") and "\n" not in a1
    assert "| A-2 |" in items and "(T+24h)" in items and "| done " in items
    assert "- [ ] A-1: " in md.split("## Open action items", 1)[1]


def test_the_rehearsal_shows_a_gate_overdue_then_done_and_its_retrospective_lists_the_action_item(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_rehearse import rehearse

    out, took = rehearse(tmp_path, monkeypatch, speed=600, start="T-30m", until="T+4h")  # ends on its own
    overdue = out.index("*qa-evidence* is overdue")
    done = out.index("*qa-evidence* is *ready*")
    gonogo = out.index("*Go/No-Go decision: GO*")
    assert overdue < done < gonogo and "<@U0COMMANDER>" not in out  # the shell shows people as @U…
    assert "Action item *A-1* added by @U0SCRIBE" in out
    (retro,) = tmp_path.glob("rehearsal-retrospective-*.md")
    items = retro.read_text().split("## Action items", 1)[1].split("## Open action items", 1)[0]
    row = next(line for line in items.splitlines() if line.startswith("| A-1 |"))
    assert "@U0ENG (eng_oncall)" in row and "(T+24h)" in row and "| open |" in row
