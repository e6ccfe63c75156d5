"""/checkpoint and its decision buttons, through the real stack."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands.config import Config, parse_config
from db.models import Checkpoint, ProbeResult, Rollback
from tests.conftest import TEST_CONFIG
from tests.console_helpers import (
    COMMANDER,
    ENG,
    INJECTION,
    STRANGER,
    WAR_ROOM,
    click,
    decisions,
    message,
    outbox_count,
    refusals,
    slash,
    texts,
    ts_of,
)
from tests.harness import Harness
from tests.times import at


@pytest.fixture
def config() -> Config:
    return parse_config({**TEST_CONFIG, "probes": [
        {"name": "app", "url": "https://staging.example/app", "threshold_ms": 300},
        {"name": "api", "url": "https://staging.example/api", "threshold_ms": 500},
        {"name": "search", "url": "https://staging.example/search", "threshold_ms": 200},
        {"name": "auth", "url": "https://staging.example/auth"},
    ]})


def add_probe(bot: Harness, probe: str, *, ok: bool = True, latency: float | None = None, status: int | None = 200,
              ago: timedelta = timedelta(0)) -> None:
    with bot.session() as s:
        launch_id = bot.incidents()[0].launch_id if bot.incidents() else 1
        s.add(ProbeResult(launch_id=launch_id, probe=probe, checked_at=bot.clock.now() - ago, ok=ok,
                          latency_ms=latency, status_code=status, error=None if ok else "connect timeout"))
        s.commit()


def checkpoints(bot: Harness) -> list[Checkpoint]:
    with bot.session() as s:
        from sqlmodel import select
        return list(s.exec(select(Checkpoint).order_by(Checkpoint.id)).all())


def test_summary_reports_incidents_probes_and_decisions(bot: Harness) -> None:
    slash(bot, "/incident", "sev1 checkout 500s", user=ENG)                  # INC-1 open, not acknowledged
    slash(bot, "/incident", "sev2 search slow", user=ENG)                    # INC-2 acknowledged
    slash(bot, "/incident", "sev4 logo blurry", user=ENG)                    # INC-3 resolved
    bot.clock.advance(timedelta(minutes=4))
    slash(bot, "/incident", "ack INC-2")
    slash(bot, "/incident", "ack INC-3")
    bot.clock.advance(timedelta(minutes=20))
    slash(bot, "/incident", "resolve INC-3 fixed the asset")
    slash(bot, "/decision", "freeze deploys until T+4h", user=ENG)
    add_probe(bot, "app", latency=212.4, ago=timedelta(minutes=3))
    add_probe(bot, "app", latency=180.0)                                     # the newest reading counts
    add_probe(bot, "api", latency=730.0)
    add_probe(bot, "search", ok=False, latency=None, status=503)
    bot.clock.advance(timedelta(minutes=36))                                 # T+1h
    out = slash(bot, "/checkpoint", "first business checkpoint")
    assert out.startswith("Checkpoint posted in the war room")
    bot.deliver()
    text = texts(bot)[-1]
    assert text.startswith(f":triangular_flag_on_post: *Checkpoint* at {at('11:00')} by <@U0COMMANDER>: first business checkpoint")
    assert "*Open incidents: 2*" in text
    assert "_Critical_ (1):\n• INC-1 checkout 500s — owner <@U0COMMANDER>, open 1h, *not acknowledged*" in text
    assert "_High_ (1):\n• INC-2 search slow — owner <@U0COMMANDER>, open 1h, acknowledged" in text
    assert "*Resolved since the start: 1*\n• INC-3 logo blurry — acknowledged in 4m, resolved in 24m" in text
    assert f"• app: 180 ms (within the 300 ms threshold) at {at('10:24')}" in text
    assert "• api: :red_circle: 730 ms (over the 500 ms threshold)" in text
    assert "• search: :red_circle: FAILED (HTTP 503)" in text
    assert "• auth: no reading yet" in text
    assert f"*Decisions since the start: 1*\n• {at('10:24')} <@U0ENG> (decision): freeze deploys until T+4h" in text
    blocks = bot.posts(WAR_ROOM)[-1]["blocks"]
    assert [e["value"] for e in blocks[-1]["elements"]] == ["continue", "widen", "hold", "rollback"]
    assert [e["action_id"] for e in blocks[-1]["elements"]] == [
        "checkpoint_decision:continue", "checkpoint_decision:widen", "checkpoint_decision:hold",
        "checkpoint_decision:rollback"]


def test_second_checkpoint_reports_only_what_happened_since(bot: Harness) -> None:
    slash(bot, "/incident", "sev4 old thing")
    slash(bot, "/incident", "resolve INC-1")
    slash(bot, "/decision", "old decision")
    slash(bot, "/checkpoint")
    bot.deliver()
    click(bot, "checkpoint_decision:continue", "continue", ref=f"checkpoint:{checkpoints(bot)[0].id}")
    bot.clock.advance(timedelta(hours=3))
    slash(bot, "/decision", "widen to region two")
    slash(bot, "/checkpoint", "T+4h")
    bot.deliver()
    text = texts(bot)[-1]
    assert f"*Resolved since the last checkpoint ({at('10:00')}): 0*" in text
    assert "*Decisions since the last checkpoint: 2*" in text  # the checkpoint choice and the new one
    assert "(checkpoint): continue" in text and "widen to region two" in text and "old decision" not in text


def test_non_commander_is_refused_nothing_posted(bot: Harness) -> None:
    posts = outbox_count(bot)
    out = slash(bot, "/checkpoint", "hello", user=ENG)
    assert out == "Only the commander can use `/checkpoint`. The commander is <@U0COMMANDER>."
    assert checkpoints(bot) == [] and outbox_count(bot) == posts
    assert refusals(bot)[0].payload["command"] == "/checkpoint"


def test_oversized_note_and_injected_note(bot: Harness) -> None:
    assert "keep it to 500" in slash(bot, "/checkpoint", "n" * 501)
    assert checkpoints(bot) == []
    slash(bot, "/checkpoint", INJECTION)
    bot.deliver()
    text = texts(bot)[-1]
    assert "<!channel>" not in text and "&lt;!channel&gt; &lt;@U0EXEC&gt;" in text


def test_decision_once_by_the_commander_on_the_newest_checkpoint(bot: Harness) -> None:
    slash(bot, "/checkpoint", "one")
    bot.deliver()
    first = f"checkpoint:{checkpoints(bot)[0].id}"
    # the wrong person
    out = click(bot, "checkpoint_decision:continue", "continue", user=STRANGER, ref=first)
    assert out.startswith("Only the commander can use `checkpoint decision`")
    assert decisions(bot) == [] and refusals(bot)[-1].actor == STRANGER
    # a value that is not a choice
    assert "not one warroom knows" in click(bot, "checkpoint_decision:launch", "launch-the-missiles", ref=first)
    # the commander, twice (a double click)
    bot.clock.advance(timedelta(minutes=2))
    assert click(bot, "checkpoint_decision:hold", "hold", ref=first) == "Decision recorded: hold."
    out = click(bot, "checkpoint_decision:continue", "continue", ref=first)
    assert out == f"The checkpoint of {at('10:00')} was already decided: *hold* by <@U0COMMANDER> at {at('10:02')}. Nothing changed."
    [d] = decisions(bot, "checkpoint")
    assert (d.text, d.actor, d.created_at, d.payload["checkpoint_id"]) == ("hold", COMMANDER, bot.clock.now(),
                                                                          checkpoints(bot)[0].id)
    assert checkpoints(bot)[0].choice == "hold"
    bot.deliver()
    updated = message(bot, WAR_ROOM, ts_of(bot, first))
    assert updated["blocks"][-1]["type"] == "context" and "Decided: *hold*" in updated["blocks"][-1]["elements"][0]["text"]
    assert f"*Checkpoint* at {at('10:00')}" in updated["text"] and "Decide:" not in updated["text"]
    assert f"Checkpoint decision ({at('10:00')} checkpoint): *hold*, by <@U0COMMANDER> at {at('10:02')}." in texts(bot)


def test_click_on_a_superseded_checkpoint_is_stale(bot: Harness) -> None:
    slash(bot, "/checkpoint", "one")
    bot.clock.advance(timedelta(minutes=30))
    slash(bot, "/checkpoint", "two")
    bot.deliver()
    old, new = (f"checkpoint:{c.id}" for c in checkpoints(bot))
    out = click(bot, "checkpoint_decision:widen", "widen", ref=old)
    assert out == f"That checkpoint ({at('10:00')}) was superseded by the one at {at('10:30')}; decide on the newest. Nothing changed."
    assert decisions(bot) == []
    assert click(bot, "checkpoint_decision:widen", "widen", ref=new) == "Decision recorded: widen."
    assert [c.choice for c in checkpoints(bot)] == [None, "widen"]


def test_click_with_no_message_decides_the_newest_and_none_without_a_checkpoint(bot: Harness) -> None:
    assert "There is no checkpoint to decide on" in click(bot, "checkpoint_decision:continue", "continue")
    slash(bot, "/checkpoint")
    bot.clock.advance(timedelta(minutes=1))
    slash(bot, "/checkpoint")
    assert click(bot, "checkpoint_decision:continue", "continue") == "Decision recorded: continue."
    assert [c.choice for c in checkpoints(bot)] == [None, "continue"]


def test_rollback_choice_opens_the_rollback_confirmation(bot: Harness) -> None:
    slash(bot, "/checkpoint", "errors climbing")
    bot.deliver()
    out = click(bot, "checkpoint_decision:rollback", "rollback", ref=f"checkpoint:{checkpoints(bot)[0].id}")
    assert out.startswith("Rollback requested: confirm it on the message in the war room")
    bot.deliver()
    with bot.session() as s:
        from sqlmodel import select
        [rollback] = s.exec(select(Rollback)).all()
    assert rollback.status == "pending" and rollback.reason == "the checkpoint decision at 10:00 (errors climbing)"
    # urgent, so it went before the routine note of the decision
    confirmation = next(p for p in bot.posts(WAR_ROOM) if "Rollback requested" in p["text"])
    assert confirmation["text"].startswith(":warning: *Rollback requested* by <@U0COMMANDER>")
    assert [e["action_id"] for e in confirmation["blocks"][-1]["elements"]] == ["rollback_confirm", "rollback_cancel"]
    assert [d.text for d in decisions(bot)] == ["rollback"]
    assert not any(t.startswith("Rollback initiated") for t in texts(bot))  # nothing broadcast before confirmation


def test_sev3_waiting_for_the_checkpoint_is_escalated_there(bot: Harness) -> None:
    slash(bot, "/incident", "sev3 export button misaligned", user=ENG)
    slash(bot, "/incident", "sev3 tooltip typo", user=ENG)
    slash(bot, "/incident", "ack INC-2", user=ENG)
    bot.clock.advance(timedelta(minutes=50))
    bot.tick()
    assert bot.events("incident.escalated") == []  # nothing fires by the clock for next_checkpoint
    out = slash(bot, "/checkpoint")
    assert "Escalated: INC-1." in out
    bot.deliver()
    pings = [p for p in bot.posts(WAR_ROOM) if "escalat" in p["text"]]
    assert len(pings) >= 1
    assert all("INC-1" in p["text"] and "<@U0COMMANDER>" in p["text"] for p in pings)
    assert not any("INC-2" in p["text"] for p in pings)
    assert "Escalated now, unacknowledged and waiting for this checkpoint: INC-1." in texts(bot)[-1]
    assert [e.payload["number"] for e in bot.events("incident.escalated")] == [1]
