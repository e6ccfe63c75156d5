"""/rollback: confirmation, approvals, broadcast, checklist and the feature-flag webhook, through the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.flag_webhook import lease_for, run_rollback_webhooks
from bot.scheduler import run_due
from commands.config import Config, parse_config
from commands.rollback import claim_webhook
from db.models import Rollback, Timer
from tests.conftest import TEST_CONFIG
from tests.console_helpers import (
    COMMANDER,
    DEVOPS,
    ENG,
    INJECTION,
    OPERATORS,
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
from tests.flag_server import FlagServer, closed_port_url
from tests.harness import Harness
from tests.times import at

BROADCAST = (f"Rollback initiated at {at('10:00')} due to checkout errors. Operators: revert to legacy workflows immediately. "
             "Follow instructions in Runbook §6.")


@pytest.fixture
def flags() -> Iterator[FlagServer]:
    with FlagServer() as server:
        yield server


def make_config(url: str | None, *, approvals: int = 1, retries: int = 2) -> Config:
    raw = {**TEST_CONFIG, "channels": {"war_room": "C0WARROOM", "broadcast": ["C0OPERATORS", "C0SUPPORT"]},
           "rollback": {"approvals": approvals,
                        "steps": ["Disable production flag", "Run rollback script", "Notify operators"]}}
    if url:
        # the smallest timeout, so a slow flag service (2 s) times out quickly, and a busy machine's answer does not
        raw["rollback"]["webhook"] = {"url": url, "method": "POST", "json": {"enabled": False}, "retries": retries,
                                      "timeout": "1s"}
    return parse_config(raw)


@pytest.fixture
def config(request: pytest.FixtureRequest, flags: FlagServer) -> Config:
    marker = request.node.get_closest_marker("rollback_config")
    kwargs = dict(marker.kwargs) if marker else {}
    url = kwargs.pop("url", flags.url)
    return make_config(closed_port_url() if url == "down" else url, **kwargs)


def rollbacks(bot: Harness) -> list[Rollback]:
    with bot.session() as s:
        return list(s.exec(select(Rollback).order_by(Rollback.id)).all())


def request(bot: Harness, reason: str = "checkout errors") -> str:
    out = slash(bot, "/rollback", reason)
    bot.deliver()
    return out


def confirm(bot: Harness, user: str = COMMANDER, rollback_id: int | None = None) -> str:
    rid = rollback_id or rollbacks(bot)[-1].id
    return click(bot, "rollback_confirm", str(rid), user=user, ref=f"rollback:{rid}")


def fire_webhooks(bot: Harness) -> int:
    n = run_rollback_webhooks(bot.runtime.dispatcher)
    bot.deliver()
    return n


def broadcasts(bot: Harness, channel: str) -> list[str]:
    return [t for t in texts(bot, channel) if t.startswith("Rollback initiated at")]


def test_acceptance_commander_rollback_broadcasts_calls_webhook_once_logs_one_decision(
        bot: Harness, flags: FlagServer) -> None:
    out = request(bot)
    assert out.startswith("Rollback requested: confirm it on the message in the war room")
    assert broadcasts(bot, WAR_ROOM) == [] and flags.calls == []
    confirmation = bot.posts(WAR_ROOM)[-1]
    assert confirmation["text"].startswith(f":warning: *Rollback requested* by <@U0COMMANDER> at {at('10:00')}: checkout errors")
    assert confirm(bot).startswith("Rollback initiated")
    bot.deliver()
    for channel in (WAR_ROOM, OPERATORS, "C0SUPPORT"):
        assert broadcasts(bot, channel) == [BROADCAST], channel
    bot.tick()  # run_due never takes the webhook timer: it is network I/O
    with bot.session() as s:
        [timer] = s.exec(select(Timer).where(Timer.kind == "rollback_webhook")).all()
        assert timer.done_at is None
    assert fire_webhooks(bot) == 1
    assert fire_webhooks(bot) == 0
    [call] = flags.calls
    assert call.json == {"enabled": False} and call.headers["Idempotency-Key"].startswith("warroom-rollback-")
    assert "Feature-flag webhook answered HTTP 200: the flag is switched off." in texts(bot)
    [d] = decisions(bot)
    assert (d.kind, d.text, d.actor, d.created_at) == ("rollback", "checkout errors", COMMANDER, bot.clock.now())
    [rb] = rollbacks(bot)
    assert (rb.status, rb.approvals, rb.webhook_status) == ("confirmed", [COMMANDER], "HTTP 200")
    updated = message(bot, WAR_ROOM, ts_of(bot, f"rollback:{rb.id}"))
    assert updated["text"].startswith(f":rewind: *Rollback confirmed* at {at('10:00')} by <@U0COMMANDER>")
    assert all(b["type"] != "actions" for b in updated["blocks"])


def test_acceptance_non_commander_rollback_changes_and_posts_nothing(bot: Harness, flags: FlagServer) -> None:
    posts = outbox_count(bot)
    out = slash(bot, "/rollback", "checkout errors", user=ENG)
    assert out == "Only the commander can use `/rollback`. The commander is <@U0COMMANDER>."
    assert rollbacks(bot) == [] and outbox_count(bot) == posts and decisions(bot) == []
    bot.deliver()
    assert bot.posts() == [] and flags.calls == []
    assert refusals(bot)[0].payload["command"] == "/rollback" and refusals(bot)[0].actor == ENG


def test_bad_reasons_and_unknown_ids_store_nothing(bot: Harness) -> None:
    for text, expected in [("", "needs its reason"), ("r" * 501, "keep it to 500")]:
        out = slash(bot, "/rollback", text)
        assert expected in out and "Usage: /rollback" in out
    for value, expected in [("abc", "not one warroom knows"), ("999", "not one of this launch")]:
        assert expected in click(bot, "rollback_confirm", value)
        assert expected in click(bot, "rollback_cancel", value)
        assert expected in click(bot, "rollback_step", f"{value}:1")
    assert rollbacks(bot) == [] and outbox_count(bot) == 0


def test_a_second_rollback_while_pending_or_done_says_so(bot: Harness, flags: FlagServer) -> None:
    request(bot)
    assert slash(bot, "/rollback", "again").startswith("A rollback is already waiting for confirmation")
    assert len(rollbacks(bot)) == 1
    confirm(bot)
    out = slash(bot, "/rollback", "again")
    assert out.startswith(f"The rollback was already initiated at {at('10:00')} (checkout errors); it is not broadcast twice.")
    # a double click on confirm, and a click on the (now stale) confirmation
    assert confirm(bot).startswith("The rollback was already initiated")
    bot.deliver()
    fire_webhooks(bot)
    assert len(broadcasts(bot, WAR_ROOM)) == 1 and len(broadcasts(bot, OPERATORS)) == 1
    assert len(flags.calls) == 1 and len(decisions(bot)) == 1 and len(rollbacks(bot)) == 1


def test_only_the_commander_confirms_with_one_approval(bot: Harness) -> None:
    request(bot)
    out = confirm(bot, user=ENG)
    assert out.startswith("Only the commander can use `rollback confirmation`")
    assert rollbacks(bot)[0].status == "pending" and refusals(bot)[-1].actor == ENG
    bot.deliver()
    assert broadcasts(bot, WAR_ROOM) == []


def test_cancel_is_the_commanders_and_a_cancelled_request_cannot_be_confirmed(bot: Harness) -> None:
    request(bot)
    rid = str(rollbacks(bot)[0].id)
    assert "Only the commander" in click(bot, "rollback_cancel", rid, user=STRANGER, ref=f"rollback:{rid}")
    assert click(bot, "rollback_cancel", rid, ref=f"rollback:{rid}").startswith("You cancelled the rollback")
    assert click(bot, "rollback_cancel", rid, ref=f"rollback:{rid}").startswith("That rollback request")
    assert "was cancelled" in confirm(bot)
    bot.deliver()
    assert message(bot, WAR_ROOM, ts_of(bot, f"rollback:{rid}"))["text"].startswith(
        "Rollback request (checkout errors) cancelled by <@U0COMMANDER>")
    assert broadcasts(bot, WAR_ROOM) == [] and decisions(bot) == []
    assert request(bot, "payments down").startswith("Rollback requested")  # a new one may be asked
    assert [r.status for r in rollbacks(bot)] == ["cancelled", "pending"]


def test_confirm_after_it_was_done_cannot_be_cancelled(bot: Harness) -> None:
    request(bot)
    confirm(bot)
    rid = str(rollbacks(bot)[0].id)
    assert click(bot, "rollback_cancel", rid, ref=f"rollback:{rid}").startswith("The rollback was already initiated")
    assert rollbacks(bot)[0].status == "confirmed"


@pytest.mark.rollback_config(approvals=2)
def test_two_approvals_commander_first(bot: Harness, flags: FlagServer) -> None:
    request(bot)
    assert bot.posts(WAR_ROOM)[-1]["text"].count("two confirmations") == 1
    assert confirm(bot).startswith("Your confirmation is recorded; it waits for a second confirmation")
    assert confirm(bot).startswith("You already confirmed this rollback")
    out = confirm(bot, user=STRANGER)
    assert out.startswith("Only the commander (<@U0COMMANDER>) and holders of a launch role can confirm")
    bot.deliver()
    assert broadcasts(bot, WAR_ROOM) == [] and decisions(bot) == []
    assert "Confirmed so far by <@U0COMMANDER>" in message(bot, WAR_ROOM, ts_of(bot, f"rollback:{rollbacks(bot)[0].id}"))["text"]
    assert confirm(bot, user=ENG).startswith("Rollback initiated")
    bot.deliver()
    assert broadcasts(bot, WAR_ROOM) == [BROADCAST]
    [d] = decisions(bot)
    assert d.actor == ENG and d.payload["approvals"] == [COMMANDER, ENG]


@pytest.mark.rollback_config(approvals=2)
def test_two_approvals_other_holder_first_then_commander(bot: Harness) -> None:
    request(bot)
    assert confirm(bot, user=ENG).startswith("Your confirmation is recorded")
    out = confirm(bot, user=DEVOPS)
    assert out == "<@U0ENG> already gave the second confirmation; the rollback now waits for the commander (<@U0COMMANDER>)."
    bot.deliver()
    assert broadcasts(bot, WAR_ROOM) == []
    assert confirm(bot).startswith("Rollback initiated")
    assert rollbacks(bot)[0].approvals == [ENG, COMMANDER]
    bot.deliver()
    assert len(broadcasts(bot, OPERATORS)) == 1 and len(decisions(bot)) == 1


@pytest.mark.rollback_config(retries=2)
def test_failing_webhook_is_retried_shouted_and_never_stops_the_broadcast(bot: Harness, flags: FlagServer) -> None:
    flags.status = 500
    request(bot)
    confirm(bot)
    assert fire_webhooks(bot) == 1
    assert len(flags.calls) == 3  # retries: 2
    shout = [t for t in texts(bot) if "FAILED" in t]
    assert len(shout) == 1 and "<!here>" in shout[0] and "HTTP 500, 3 attempts" in shout[0]
    assert "<@U0ENG> switch it off by hand now" in shout[0]
    assert broadcasts(bot, WAR_ROOM) == [BROADCAST] and broadcasts(bot, OPERATORS) == [BROADCAST]
    assert rollbacks(bot)[0].webhook_status == "failed: HTTP 500"
    assert bot.events("rollback.webhook")[0].payload["ok"] is False
    assert fire_webhooks(bot) == 0 and len(flags.calls) == 3


@pytest.mark.rollback_config(retries=1)
def test_slow_webhook_times_out(bot: Harness, flags: FlagServer) -> None:
    flags.delay = 2.0
    request(bot)
    confirm(bot)
    fire_webhooks(bot)
    assert len(flags.calls) == 2
    [shout] = [t for t in texts(bot) if "FAILED" in t]
    assert "timed out after 1s, 2 attempts" in shout
    assert broadcasts(bot, OPERATORS) == [BROADCAST]


@pytest.mark.rollback_config(url="down", retries=1)
def test_webhook_down(bot: Harness) -> None:
    request(bot)
    confirm(bot)
    assert fire_webhooks(bot) == 1
    [shout] = [t for t in texts(bot) if "FAILED" in t]
    assert "ConnectError: could not reach the flag service, 2 attempts" in shout
    assert broadcasts(bot, WAR_ROOM) == [BROADCAST]


def test_webhook_4xx_is_not_retried(bot: Harness, flags: FlagServer) -> None:
    flags.status = 403
    request(bot)
    confirm(bot)
    fire_webhooks(bot)
    assert len(flags.calls) == 1
    assert any("FAILED* (HTTP 403, 1 attempt)" in t for t in texts(bot))


def test_webhook_lease_at_least_once_after_a_crash(bot: Harness, flags: FlagServer) -> None:
    request(bot)
    confirm(bot)
    dispatcher = bot.runtime.dispatcher
    with bot.session() as s:
        timer_id = s.exec(select(Timer.id).where(Timer.kind == "rollback_webhook")).one()
    lease = lease_for(bot.config.webhook)
    claim = dispatcher.tick(lambda ctx: claim_webhook(ctx, timer_id, lease))
    assert claim is not None  # this runner "crashes" here, before calling
    assert dispatcher.tick(lambda ctx: claim_webhook(ctx, timer_id, lease)) is None  # leased: nobody else takes it
    assert fire_webhooks(bot) == 0 and flags.calls == []
    bot.clock.advance(lease + timedelta(seconds=1))
    assert fire_webhooks(bot) == 1 and len(flags.calls) == 1
    assert sum("answered HTTP 200" in t for t in texts(bot)) == 1
    run_due(dispatcher)
    assert fire_webhooks(bot) == 0 and len(flags.calls) == 1


@pytest.mark.rollback_config(url=None)
def test_without_a_webhook_the_war_room_is_told_to_flip_the_flag_by_hand(bot: Harness) -> None:
    request(bot)
    assert "no feature-flag webhook is configured" in confirm(bot)
    bot.deliver()
    assert any(t.startswith("No feature-flag webhook is configured: <@U0ENG>") for t in texts(bot))
    assert broadcasts(bot, WAR_ROOM) == [BROADCAST] and rollbacks(bot)[0].webhook_status == "not configured"


def test_checklist_ticked_by_anyone_once_and_completed(bot: Harness) -> None:
    request(bot)
    confirm(bot)
    bot.deliver()
    rid = rollbacks(bot)[0].id
    ref = f"rollback_steps:{rid}"
    posted = message(bot, WAR_ROOM, ts_of(bot, ref))
    assert posted["text"].startswith("*Rollback checklist* (0/3 done)")
    assert [b["accessory"]["value"] for b in posted["blocks"][1:]] == [f"{rid}:1", f"{rid}:2", f"{rid}:3"]
    bot.clock.advance(timedelta(minutes=3))
    assert click(bot, "rollback_step", f"{rid}:1", user=ENG, ref=ref) == "Step 1 ticked."
    assert click(bot, "rollback_step", f"{rid}:1", user=DEVOPS, ref=ref) == \
        f"Step 1 was already ticked by <@U0ENG> at {at('10:03')}."
    assert "not one of a confirmed rollback" in click(bot, "rollback_step", f"{rid}:9", ref=ref)
    assert "not one warroom knows" in click(bot, "rollback_step", f"{rid}", ref=ref)
    bot.deliver()
    now = message(bot, WAR_ROOM, ts_of(bot, ref))
    assert now["text"].startswith("*Rollback checklist* (1/3 done)")
    assert f":white_check_mark: 1. Disable production flag — <@U0ENG> at {at('10:03')}" in now["text"]
    assert "accessory" not in now["blocks"][1] and "accessory" in now["blocks"][2]
    click(bot, "rollback_step", f"{rid}:2", user=DEVOPS, ref=ref)
    click(bot, "rollback_step", f"{rid}:3", user=STRANGER, ref=ref)
    bot.deliver()
    assert sum(t.startswith(":white_check_mark: Rollback checklist complete") for t in texts(bot)) == 1
    assert len(bot.events("rollback.step_done")) == 3


def test_checklist_of_a_pending_rollback_cannot_be_ticked(bot: Harness) -> None:
    request(bot)
    assert "not one of a confirmed rollback" in click(bot, "rollback_step", f"{rollbacks(bot)[0].id}:1")


def test_mentions_in_the_reason_are_escaped_everywhere(bot: Harness) -> None:
    request(bot, INJECTION)
    confirm(bot)
    bot.deliver()
    for channel in (WAR_ROOM, OPERATORS):
        for text in texts(bot, channel):
            assert "<!channel>" not in text and "<@U0EXEC>" not in text and "<https://evil" not in text
    assert broadcasts(bot, OPERATORS)[0].startswith(
        f"Rollback initiated at {at('10:00')} due to &lt;!channel&gt; &lt;@U0EXEC&gt; &amp; &lt;https://evil.example|click&gt;.")


def test_simultaneous_confirm_clicks_broadcast_once(bot: Harness, flags: FlagServer) -> None:
    request(bot)
    rid = str(rollbacks(bot)[0].id)
    ts = ts_of(bot, f"rollback:{rid}")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: bot.block_actions("rollback_confirm", rid, message_ts=ts), range(4)))
    assert all(r.status_code == 200 for r in results)
    replies = [r["text"] for r in bot.wait_for_responses(4)]
    assert sum(t.startswith("Rollback initiated") for t in replies) == 1
    assert sum(t.startswith("The rollback was already initiated") for t in replies) == 3
    bot.deliver()
    fire_webhooks(bot)
    assert len(broadcasts(bot, OPERATORS)) == 1 and len(decisions(bot)) == 1 and len(flags.calls) == 1
