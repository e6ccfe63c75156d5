"""/gonogo and /signoff polls, through the real stack."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from db.models import Poll, Vote
from tests.console_helpers import (
    COMMANDER,
    CX,
    ENG,
    EXEC,
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


def polls(bot: Harness) -> list[Poll]:
    with bot.session() as s:
        return list(s.exec(select(Poll).order_by(Poll.id)).all())


def votes(bot: Harness) -> list[Vote]:
    with bot.session() as s:
        return list(s.exec(select(Vote).order_by(Vote.id)).all())


def start(bot: Harness, command: str = "/gonogo") -> str:
    out = slash(bot, command)
    bot.deliver()
    return f"poll:{polls(bot)[-1].id}" if out.endswith("poll posted in the war room.") else out


def vote(bot: Harness, ref: str, value: str, user: str, action_id: str = "gonogo_vote") -> str:
    """Press the poll's button as Slack sends it: action_id `<name>:<choice>`, the choice in the value."""
    return click(bot, f"{action_id}:{value}", value, user=user, ref=ref)


def live(bot: Harness, ref: str) -> str:
    bot.deliver()
    return str(message(bot, WAR_ROOM, ts_of(bot, ref))["text"])


def test_acceptance_three_roles_vote_go_and_a_go_decision_lists_each_vote(bot: Harness) -> None:
    ref = start(bot)
    posted = bot.posts(WAR_ROOM)[-1]
    assert posted["text"].startswith(f"*Go/No-Go* — opened by <@U0COMMANDER> at {at('10:00')}")
    assert "• Rollback plan reviewed; backups and snapshots up to date" in posted["text"]
    assert "Waiting for: commander, eng_oncall, exec." in posted["text"]
    assert [e["value"] for e in posted["blocks"][1]["elements"]] == ["go", "nogo"]
    assert vote(bot, ref, "go", COMMANDER).startswith("Your vote (go) is recorded as commander")
    assert "• commander (<@U0COMMANDER>): *go*" in live(bot, ref)
    assert "Waiting for: eng_oncall, exec." in live(bot, ref)
    vote(bot, ref, "go", ENG)
    bot.clock.advance(timedelta(minutes=2))
    assert vote(bot, ref, "go", EXEC) == f"The Go/No-Go poll closed at {at('10:02')}: GO."
    [d] = decisions(bot, "gonogo")
    assert d.text == "GO: commander U0COMMANDER go; eng_oncall U0ENG go; exec U0EXEC go"
    assert d.actor == EXEC and d.created_at == bot.clock.now()
    assert [(v["role"], v["choice"]) for v in d.payload["votes"]] == [("commander", "go"), ("eng_oncall", "go"),
                                                                     ("exec", "go")]
    bot.deliver()
    final = message(bot, WAR_ROOM, ts_of(bot, ref))
    assert final["text"].startswith("*Go/No-Go: GO*") and len(final["blocks"]) == 1
    assert texts(bot)[-1].startswith("*Go/No-Go decision: GO*\n• commander: go (<@U0COMMANDER>)")
    assert polls(bot)[0].outcome == "GO"


def test_one_nogo_with_a_typed_reason_makes_it_nogo(bot: Harness) -> None:
    ref = start(bot)
    vote(bot, ref, "go", COMMANDER)
    assert slash(bot, "/gonogo", "nogo  backups   not verified", user=ENG).startswith("Your vote (nogo)")
    assert "• eng_oncall (<@U0ENG>): *nogo* — backups not verified" in live(bot, ref)
    slash(bot, "/gonogo", "go", user=EXEC)
    [d] = decisions(bot)
    assert d.text == "NO-GO: commander U0COMMANDER go; eng_oncall U0ENG nogo (backups not verified); exec U0EXEC go"
    bot.deliver()
    assert texts(bot)[-1].startswith("*Go/No-Go decision: NO-GO*")


def test_votes_change_until_closed_and_every_change_is_audited(bot: Harness) -> None:
    ref = start(bot)
    vote(bot, ref, "nogo", ENG)
    assert vote(bot, ref, "nogo", ENG) == "You already voted nogo as eng_oncall; nothing changed."  # double click
    vote(bot, ref, "go", ENG)
    slash(bot, "/gonogo", "go flags verified", user=ENG)  # same choice, a reason added
    assert [e.kind for e in bot.events() if e.kind.startswith("poll.vote")] == [
        "poll.voted", "poll.vote_changed", "poll.vote_changed"]
    changed = bot.events("poll.vote_changed")[0]
    assert changed.actor == ENG and changed.payload["before"]["choice"] == "nogo" and changed.payload["choice"] == "go"
    [v] = votes(bot)
    assert (v.choice, v.reason) == ("go", "flags verified")
    vote(bot, ref, "go", COMMANDER)
    vote(bot, ref, "go", EXEC)
    assert decisions(bot)[0].text.startswith("GO:")
    # closed: no more changes, from the old message or by command
    assert vote(bot, ref, "nogo", ENG) == f"The Go/No-Go poll closed at {at('10:00')}: GO."
    assert "No Go/No-Go poll is open" in slash(bot, "/gonogo", "nogo", user=ENG)
    assert len(decisions(bot)) == 1 and votes(bot)[0].choice == "go"


def test_non_holders_and_non_commanders_are_refused(bot: Harness) -> None:
    posts = outbox_count(bot)
    assert slash(bot, "/gonogo", user=ENG).startswith("Only the commander can use `/gonogo`")
    assert polls(bot) == [] and outbox_count(bot) == posts
    ref = start(bot)
    out = vote(bot, ref, "go", CX)
    assert out.startswith("Only the commander (<@U0COMMANDER>), the eng_oncall (<@U0ENG>), the exec (<@U0EXEC>) can use")
    assert "you hold none of those roles" in out
    assert "you hold none" in slash(bot, "/gonogo", "go fine by me", user=STRANGER)
    assert votes(bot) == []
    assert [r.actor for r in refusals(bot)] == [ENG, CX, STRANGER]
    assert slash(bot, "/gonogo", "close", user=ENG).startswith("Only the commander can use `/gonogo close`")


def test_clicks_without_a_poll_and_bad_values(bot: Harness) -> None:
    assert "No Go/No-Go poll is open; the commander starts one with `/gonogo`" in click(bot, "gonogo_vote", "go")
    start(bot)
    assert "not one warroom knows" in click(bot, "gonogo_vote", "maybe")
    assert "`maybe` is not a /gonogo vote" in slash(bot, "/gonogo", "maybe")
    assert "keep it to 300" in slash(bot, "/gonogo", "go " + "x" * 301)
    assert votes(bot) == []


def test_a_second_gonogo_while_open_says_so_and_close_counts_missing_as_nogo(bot: Harness) -> None:
    ref = start(bot)
    vote(bot, ref, "go", COMMANDER)
    out = slash(bot, "/gonogo")
    assert out.startswith(f"A Go/No-Go poll is already open (opened at {at('10:00')}); waiting for eng_oncall, exec.")
    assert len(polls(bot)) == 1
    vote(bot, ref, "go", ENG)
    assert slash(bot, "/gonogo", "close") == f"The Go/No-Go poll closed at {at('10:00')}: NO-GO."
    [d] = decisions(bot)
    assert d.text.endswith("exec - missing") and d.payload["closed_by"] == "commander"
    assert "• exec (<@U0EXEC>): no vote" in live(bot, ref)
    # a fresh poll may follow, and the old message is now stale
    new = start(bot)
    assert new != ref
    assert vote(bot, ref, "go", EXEC) == f"The Go/No-Go poll closed at {at('10:00')}: NO-GO."
    assert vote(bot, new, "go", EXEC).startswith("Your vote (go)")


def test_a_holder_of_two_required_roles_votes_for_both(bot: Harness) -> None:
    slash(bot, "/role", f"exec {COMMANDER}")
    ref = start(bot)
    assert vote(bot, ref, "go", COMMANDER).startswith("Your vote (go) is recorded as commander, exec.")
    assert vote(bot, ref, "go", ENG) == f"The Go/No-Go poll closed at {at('10:00')}: GO."
    assert decisions(bot)[0].text == "GO: commander U0COMMANDER go; eng_oncall U0ENG go; exec U0COMMANDER go"


def test_mentions_in_a_reason_are_escaped(bot: Harness) -> None:
    ref = start(bot)
    slash(bot, "/gonogo", "nogo " + INJECTION, user=EXEC)
    text = live(bot, ref)
    assert "&lt;!channel&gt; &lt;@U0EXEC&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert "<!channel>" not in text and "<https://evil" not in text
    slash(bot, "/gonogo", "close")
    bot.deliver()
    assert "<!channel>" not in texts(bot)[-1] and "&lt;!channel&gt;" in texts(bot)[-1]


def test_signoff_all_accept_says_launch_accepted(bot: Harness) -> None:
    ref = start(bot, "/signoff")
    posted = bot.posts(WAR_ROOM)[-1]
    assert posted["text"].startswith("*Launch sign-off*")
    assert "• cx: confirms CX workflows are stable" in posted["text"]
    assert [e["action_id"] for e in posted["blocks"][1]["elements"]] == [
        "signoff_vote:accepted", "signoff_vote:rollback"]
    assert [e["value"] for e in posted["blocks"][1]["elements"]] == ["accepted", "rollback"]
    assert "not one warroom knows" in vote(bot, ref, "go", CX, "signoff_vote")
    for user in (COMMANDER, ENG, CX):
        vote(bot, ref, "accepted", user, "signoff_vote")
    assert slash(bot, "/signoff", "accepted metrics look good", user=EXEC) == \
        f"The Launch sign-off poll closed at {at('10:00')}: launch accepted."
    [d] = decisions(bot, "signoff")
    assert d.text.startswith("launch accepted: commander U0COMMANDER accepted;")
    assert d.text.endswith("exec U0EXEC accepted (metrics look good)")
    bot.deliver()
    assert texts(bot)[-1].endswith(":white_check_mark: *launch accepted*")


def test_signoff_with_a_rollback_vote_calls_for_rollback(bot: Harness) -> None:
    ref = start(bot, "/signoff")
    for user in (COMMANDER, ENG, EXEC):
        vote(bot, ref, "accepted", user, "signoff_vote")
    assert vote(bot, ref, "rollback", CX, "signoff_vote").endswith("rollback called for.")
    [d] = decisions(bot, "signoff")
    assert d.text.startswith("rollback called for:") and "cx U0CX rollback" in d.text
    bot.deliver()
    assert "*Rollback called for* by cx: the commander starts it with `/rollback &lt;reason&gt;`." in texts(bot)[-1]
    assert "Only the commander can use `/signoff`" in slash(bot, "/signoff", user=CX)
    assert polls(bot)[0].outcome == "rollback called for"


def test_gonogo_and_signoff_are_independent_polls(bot: Harness) -> None:
    start(bot, "/gonogo")
    start(bot, "/signoff")
    gonogo, signoff = polls(bot)
    slash(bot, "/signoff", "accepted", user=ENG)
    assert "is not a /gonogo vote" in slash(bot, "/gonogo", "accepted", user=ENG)
    slash(bot, "/gonogo", "nogo", user=ENG)
    assert sorted((v.poll_id, v.choice) for v in votes(bot)) == sorted([(signoff.id, "accepted"), (gonogo.id, "nogo")])
