"""/incident through the real stack: signed HTTP into the Bolt app, posts at the Web API stand-in."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlmodel import select

from db.models import Activity, MessageRef
from tests.harness import Harness
from tests.times import at


def actions_of(post: dict) -> list[str]:
    return [e["action_id"] for b in post.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]


def assert_nothing_changed(bot: Harness) -> None:
    assert bot.incidents() == []
    assert bot.outbox() == []
    assert [e for e in bot.events() if e.kind != "command.refused"] == []
    bot.deliver()
    assert bot.posts() == []


def test_declare_acks_fast_then_posts_the_notification(bot: Harness) -> None:
    started = time.monotonic()
    response = bot.slash("/incident", "sev1 checkout 500s", user="U0SCRIBE")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 3.0
    assert response.json()["response_type"] == "ephemeral"
    assert "INC-1" in response.json()["text"]
    assert bot.posts() == []  # posting happens after the ack, through the outbox
    bot.deliver()
    [post] = bot.posts("C0WARROOM")
    assert post["text"].startswith("INCIDENT [Critical]: checkout 500s")
    assert "INC-1" in post["text"]
    assert "Owner: <@U0COMMANDER>" in post["text"]  # first role of sev1's escalation chain
    assert f"Next update at {at('10:15')}" in post["text"]  # sev1 updates every 15m, shown in the launch's time zone
    assert actions_of(post) == ["incident_ack", "incident_resolve"]
    [incident] = bot.incidents()
    assert (incident.number, incident.severity, incident.declared_by) == (1, "sev1", "U0SCRIBE")
    with bot.session() as s:
        assert s.get(MessageRef, f"incident:{incident.id}") is not None  # thread ts kept for replies


@pytest.mark.parametrize(("word", "name"), [("critical", "Critical"), ("HIGH", "High"), ("sev3", "Medium"),
                                            ("low", "Low")])
def test_severity_words(bot: Harness, word: str, name: str) -> None:
    assert bot.slash("/incident", f"{word} search is slow").status_code == 200
    bot.deliver()
    assert bot.posts()[0]["text"].startswith(f"INCIDENT [{name}]: search is slow")


def test_impact_and_workaround_follow_the_seed_template(bot: Harness) -> None:
    bot.slash("/incident", "sev2 approvals stuck | impact: 30% of operators | workaround: use legacy queue")
    bot.deliver()
    text = bot.posts()[0]["text"]
    assert "Impact: 30% of operators." in text and "Workaround: use legacy queue." in text


def test_numbers_count_up(bot: Harness) -> None:
    for summary in ("one", "two", "three"):
        bot.slash("/incident", f"sev4 {summary}")
    assert [i.number for i in bot.incidents()] == [1, 2, 3]


def test_acknowledge_button_records_who_and_when_and_updates_the_message(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.deliver()
    bot.clock.advance(timedelta(minutes=2))
    response = bot.block_actions("incident_ack", "1", user="U0ENG")
    assert response.status_code == 200
    bot.deliver()
    [incident] = bot.incidents()
    assert incident.acknowledged_by == "U0ENG"
    assert incident.acknowledged_at == bot.clock.now()
    assert incident.status == "acknowledged"
    [update] = bot.standin.calls_to("chat.update")
    assert update.args["ts"] == bot.posts()[0].get("ts", update.args["ts"])
    status_line = update.args["blocks"][1]["elements"][0]["text"]
    assert f"Acknowledged by <@U0ENG> at {at('10:02')}" in status_line
    assert actions_of(update.args) == ["incident_resolve"]
    thread = [p for p in bot.posts() if p.get("thread_ts")]
    assert len(thread) == 1 and "acknowledged by <@U0ENG>" in thread[0]["text"]
    assert bot.wait_for_responses(1)[0]["text"] == "You acknowledged INC-1."


def test_double_click_on_acknowledge_has_one_effect(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.block_actions("incident_ack", "1", user="U0ENG")
    bot.block_actions("incident_ack", "1", user="U0EXEC")
    bot.deliver()
    assert bot.incidents()[0].acknowledged_by == "U0ENG"
    assert len(bot.events("incident.acknowledged")) == 1
    assert len([p for p in bot.posts() if p.get("thread_ts")]) == 1
    replies = [r["text"] for r in bot.wait_for_responses(2)]
    assert any("already acknowledged by <@U0ENG>" in r for r in replies)


def test_ack_by_command_and_update_resolve_in_thread(bot: Harness) -> None:
    bot.slash("/incident", "sev2 search slow")
    assert "acknowledged" in bot.slash("/incident", "ack INC-1", user="U0ENG").json()["text"]
    assert bot.slash("/incident", "update INC-1 index rebuilt, watching", user="U0ENG").status_code == 200
    assert bot.slash("/incident", "resolve 1 fixed by reindex").json()["text"] == "You resolved INC-1."
    bot.deliver()
    parent, *replies = bot.posts()
    assert all(r["thread_ts"] for r in replies)
    # queued together, the three replies go as one post (bot/outbox_order.py), in order
    said = "\n\n".join(r["text"] for r in replies).split("\n\n")
    assert [line.split(" ")[0] for line in said] == ["INC-1", "Update", "INC-1"]
    assert "index rebuilt, watching" in said[1]
    assert "fixed by reindex" in said[2]
    final = bot.standin.calls_to("chat.update")[-1].args
    assert final["text"].startswith("RESOLVED INCIDENT [High]")
    assert actions_of(final) == []
    kinds = [e.kind for e in bot.events() if e.incident_id]
    assert kinds == ["incident.declared", "incident.acknowledged", "incident.updated", "incident.resolved"]


def test_resolve_and_sev_are_for_the_owner_or_commander(bot: Harness) -> None:
    bot.slash("/incident", "sev2 search slow")
    bot.deliver()
    before = len(bot.standin.calls)
    for text in ("resolve INC-1 done", "sev INC-1 sev1"):
        reply = bot.slash("/incident", text, user="U0CX").json()["text"]
        assert "Only the owner of INC-1 (<@U0COMMANDER>) or the commander" in reply
    bot.deliver()
    assert len(bot.standin.calls) == before
    assert bot.incidents()[0].status == "open" and bot.incidents()[0].severity == "sev2"
    refused = bot.events("command.refused")
    assert [e.payload["command"] for e in refused] == ["/incident resolve", "/incident sev"]
    assert all(e.actor == "U0CX" for e in refused)
    # the owner may, once ownership moves
    bot.slash("/incident", "owner INC-1 <@U0CX|carol>")
    assert bot.slash("/incident", "sev INC-1 critical", user="U0CX").json()["text"] == "INC-1 is now Critical."


def test_owner_change_mentions_the_new_owner(bot: Harness) -> None:
    bot.slash("/incident", "sev3 dashboard tiles stale")
    bot.slash("/incident", "owner 1 U0DEVOPS")
    bot.deliver()
    assert bot.incidents()[0].owner == "U0DEVOPS"
    reply = [p for p in bot.posts() if p.get("thread_ts")][0]["text"]
    assert "now owned by <@U0DEVOPS> (was <@U0COMMANDER>)" in reply


def test_list_and_show(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.slash("/incident", "sev3 tiles stale")
    bot.slash("/incident", "resolve INC-2")
    bot.clock.advance(timedelta(minutes=7))
    listing = bot.slash("/incident", "list").json()["text"]
    assert "INC-1 [Critical] checkout 500s" in listing and "open 7m" in listing and "INC-2" not in listing
    shown = bot.slash("/incident", "show INC-2").json()["text"]
    assert "Status: resolved" in shown and "declared by" in shown and "resolved by" in shown


def test_declare_modal_opens_and_submits(bot: Harness) -> None:
    response = bot.slash("/incident", "")
    assert response.status_code == 200
    [opened] = bot.standin.calls_to("views.open")
    assert opened.args["view"]["callback_id"] == "incident_declare"
    assert opened.args["trigger_id"].startswith("trigger.")
    assert bot.incidents() == []
    submitted = bot.view_submission("incident_declare", {"severity": "sev2", "summary": "exports fail",
                                                         "impact": "no CSVs", "workaround": ""})
    assert submitted.status_code == 200 and submitted.text == ""
    bot.deliver()
    assert bot.posts()[0]["text"].startswith("INCIDENT [High]: exports fail. Impact: no CSVs.")


def test_modal_errors_go_back_to_the_field(bot: Harness) -> None:
    response = bot.view_submission("incident_declare", {"severity": "sev2", "summary": ""})
    assert response.json() == {"response_action": "errors", "errors": {"summary": "An incident needs a summary."}}
    assert bot.incidents() == []


def test_user_text_is_escaped_so_it_never_mentions_anyone(bot: Harness) -> None:
    bot.slash("/incident", "sev1 <!channel> <@U1> <https://evil.example|click> & co")
    bot.slash("/incident", "update INC-1 <!here> please look <!subteam^S1>")
    bot.deliver()
    posts = bot.posts()
    assert "&lt;!channel&gt; &lt;@U1&gt; &lt;https://evil.example|click&gt; &amp; co" in posts[0]["text"]
    for post in posts:
        for needle in ("<!channel>", "<!here>", "<@U1>", "<https://", "<!subteam"):
            assert needle not in str(post)


@pytest.mark.parametrize(("text", "expected"), [
    ("sev9 checkout down", "is not a severity or an /incident subcommand"),
    ("sev1", "An incident needs a summary."),
    ("sev1 x | impact:", "`impact:` needs text after it"),
    ("ack", "needs an incident id"),
    ("ack INC-abc", "`INC-abc` is not an incident id like INC-7"),
    ("ack INC-99", "There is no INC-99"),
    ("ack INC-1 extra words", "takes only an incident id"),
    ("sev INC-1", "needs a value after the id"),
    ("owner INC-1 alice", "`alice` is not a Slack user like @alice"),
    ("update INC-1", "An update needs text."),
    ("list everything", "is not a severity or an /incident subcommand"),
    ("frobnicate INC-1", "is not a severity or an /incident subcommand"),
    ("sev1 " + "x" * 3001, "keep it to 500"),
    ("sev1 " + "<!channel>" * 400, "keep it under 4000"),
])
def test_malformed_commands_get_an_ephemeral_error_and_change_nothing(bot: Harness, text: str, expected: str) -> None:
    response = bot.slash("/incident", text)
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert expected in body["text"]
    assert "Usage: /incident" in body["text"] or "no INC-99" in body["text"]
    assert "<!channel>" not in body["text"]
    assert_nothing_changed(bot)


def test_resolved_incidents_cannot_be_worked(bot: Harness) -> None:
    bot.slash("/incident", "sev2 search slow")
    bot.slash("/incident", "resolve INC-1")
    bot.deliver()
    posted = len(bot.posts())
    for text in ("ack INC-1", "update INC-1 more", "resolve INC-1", "sev INC-1 sev1", "owner INC-1 U0ENG"):
        assert "already resolved" in bot.slash("/incident", text).json()["text"]
    bot.block_actions("incident_resolve", "1")
    bot.deliver()
    assert len(bot.posts()) == posted
    assert len(bot.events("incident.resolved")) == 1


def test_buttons_with_unknown_or_bad_values_change_nothing(bot: Harness) -> None:
    for value in ("99", "abc", "", "1; DROP TABLE incident"):
        assert bot.block_actions("incident_ack", value).status_code == 200
    replies = bot.wait_for_responses(4)
    assert len(replies) == 4 and all("INC" in r["text"] or "incident id" in r["text"] for r in replies)
    assert_nothing_changed(bot)


def test_bad_or_stale_signatures_get_401(bot: Harness) -> None:
    body = "command=%2Fincident&text=sev1+x&user_id=U0COMMANDER&channel_id=C0WARROOM"
    forged = bot.http.post("/slack/events", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + "0" * 64})
    assert forged.status_code == 401
    stale = bot.post_signed(body, "application/x-www-form-urlencoded", timestamp=int(time.time()) - 6 * 60)
    assert stale.status_code == 401
    unsigned = bot.http.post("/slack/events", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 401
    assert_nothing_changed(bot)


def test_event_retries_act_once(bot: Harness) -> None:
    event = {"type": "message", "channel": "C0WARROOM", "user": "U0CX", "text": "seeing errors", "ts": "1.2"}
    assert bot.event(event, event_id="Ev42").status_code == 200
    assert bot.event(event, event_id="Ev42", retry_num=1).status_code == 200
    assert bot.event(event, event_id="Ev42", retry_num=2).status_code == 200
    with bot.session() as s:
        rows = s.exec(select(Activity).where(Activity.source == "message")).all()
    assert [(r.user_id, r.source) for r in rows] == [("U0CX", "message")]


def test_health(bot: Harness) -> None:
    response = bot.http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["db"] == "ok"


def test_restart_keeps_every_incident_and_posts_nothing_twice(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.slash("/incident", "sev2 search slow")
    bot.deliver()
    bot.slash("/incident", "ack INC-1")  # queued, not yet delivered when the process stops
    url = bot.env.database_url
    bot.close()
    again = Harness(bot.standin, url, bot.config, bot.clock)
    try:
        again.deliver()
        assert [i.number for i in again.incidents()] == [1, 2]
        texts = [p["text"] for p in again.posts()]
        assert len(texts) == len(set(texts)) == 3
        assert again.slash("/incident", "sev3 third").status_code == 200
        assert again.incidents()[-1].number == 3
    finally:
        again.close()
        bot.close = lambda: None  # type: ignore[method-assign]
