"""Templates own the words (ARCHITECTURE.md, rule 5), ephemeral replies too: every reply is a macro of
templates/replies/<family>.j2, rendered by commands/render.py `reply` with the environment that escapes
every value once; no command writes a reply as a Python string."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from jinja2.runtime import Macro

from commands.errors import CommandError
from commands.render import TEMPLATES, TEXT_LIMIT, environment, reply
from tests.harness import Harness
from tests.processes import ROOT
from tests.times import DATE_TOKEN

HOSTILE = "<!channel> <@U123> & `tick` <https://evil.example|click>"
LONG = (HOSTILE + " ") * 80  # well over 5,000 characters
INCIDENT_USAGE = ("/incident sev1 &lt;summary&gt; [| impact: …] [| workaround: …]  ·  /incident ack INC-7  ·  "
                  "/incident update INC-7 &lt;text&gt;  ·  /incident resolve INC-7 [note]  ·  /incident sev INC-7 sev2  ·  "
                  "/incident owner INC-7 @user  ·  /incident page INC-7 [role]  ·  /incident list  ·  /incident show INC-7")


def macros() -> list[str]:
    """Every reply there is, as `family.macro`."""
    names = []
    for path in sorted((TEMPLATES / "replies").glob("*.j2")):
        module = environment().get_template(f"replies/{path.name}").module
        names += [f"{path.stem}.{name}" for name in dir(module) if isinstance(getattr(module, name), Macro)]
    return names


def samples(text: str, *, other_branch: bool) -> dict[str, Any]:
    """A value for every macro parameter, its text hostile; people are that text too (never a user id), so
    nothing may come out as a mention. `other_branch` flips the flags, so both sides of each `if` render."""
    at = datetime(2025, 10, 16, 17, 0, tzinfo=UTC)
    incident = SimpleNamespace(number=7, owner=text, acknowledged_by=text, acknowledged_at=at, summary=text)
    flag = not other_branch
    return {
        "already": flag, "bootstrap": flag, "close": text if flag else None, "webhook": text if flag else None,
        "user": text if flag else None, "holder": text if flag else None, "needed": 2 if flag else 1,
        "escalated": [incident] if flag else [], "incidents": [incident] if flag else [],
        "missing": [{"role": text}] if flag else [],
        "rollback": SimpleNamespace(status="pending" if flag else "confirmed", requested_by=text, requested_at=at,
                                    confirmed_at=at, reason=text, approvals=[text] * (1 if flag else 2)),
        "checkpoint": SimpleNamespace(created_at=at, choice=text, decided_by=text, decided_at=at),
        "newest": SimpleNamespace(created_at=at), "decision": SimpleNamespace(created_at=at),
        "incident": incident, "launch": SimpleNamespace(name=text, started_at=at, started_by=text),
        "poll": SimpleNamespace(opened_at=at, closed_at=at, outcome=text), "probe": SimpleNamespace(name=text),
        "severity": SimpleNamespace(name=text), "spec": SimpleNamespace(command=text, title=text, yes=text, no=text),
        "step": SimpleNamespace(position=1, done_by=text, done_at=at), "rows": [SimpleNamespace(scenario=text)] * 3,
        "roles": [text, text], "holders": {text: text}, "known": [text, text], "marks": [object()],
        "admins": [text] if flag else [],
        "every": timedelta(minutes=15), "shortest": timedelta(minutes=1), "longest": timedelta(hours=24),
        "wait": timedelta(seconds=42),
        "item": SimpleNamespace(key=text, state=text, owner=text, number=7, done_by=text, done_at=at),  # readiness
        "spans": flag, "part": text,
        "update": SimpleNamespace(state="cancelled" if flag else "sent", decided_by=text, decided_at=at),
        **rollout_samples(text, at, flag),
        "next_at": at, "tz": "America/Los_Angeles", "length": 5000, "limit": 4000, "number": 7,
        **{name: text for name in ("choice", "command", "commander", "cx", "field", "filename", "key", "local", "message",
                                   "other", "query", "role", "token", "usage", "verb", "what", "word")},
    }


def rollout_samples(text: str, at: datetime, flag: bool) -> dict[str, Any]:
    """/rollout's values (templates/replies/rollout.j2)."""
    reading = SimpleNamespace(ok=flag, value=0.5, read_at=at, error=text)
    return {
        "row": SimpleNamespace(phase=text, percent=5.0, entered_at=at, entered_by=text, webhook_status=text),
        "phase": SimpleNamespace(name=text), "next": SimpleNamespace(name=text, percent=50.0) if flag else None,
        "gates": [{"gate": text, "verdict": "pass" if flag else "failed", "reading": reading,
                   "since": at if flag else None, "held_for": timedelta(hours=1)}],
        "held": timedelta(hours=1), "hold_for": timedelta(hours=2) if flag else None,
        "stale_after": timedelta(minutes=3), "gate": text, "reading": reading, "verdict": "fail" if flag else "stale",
        "since": at, "held_for": timedelta(hours=1),
    }


@pytest.mark.parametrize("name", macros())
@pytest.mark.parametrize("text", [HOSTILE, LONG], ids=["hostile", "5000 chars"])
@pytest.mark.parametrize("other_branch", [False, True], ids=["if", "else"])
def test_every_reply_escapes_what_it_is_given(name: str, text: str, other_branch: bool) -> None:
    family, _, macro = name.partition(".")
    parameters = getattr(environment().get_template(f"replies/{family}.j2").module, macro).arguments
    values = samples(text, other_branch=other_branch)
    assert not set(parameters) - set(values), f"{name}: give the test a hostile sample for each parameter"
    out = reply(name, **{p: values[p] for p in parameters})
    assert out
    bare = DATE_TOKEN.sub("", out)  # the bot's own date tokens (times) aside
    assert "<!" not in bare and "<@" not in bare and "<http" not in bare  # no ping, no mention, no link from a value
    assert "&amp;amp;" not in out and "&amp;lt;" not in out  # escaped once, never twice
    assert len(out) <= TEXT_LIMIT


def test_every_family_has_its_replies() -> None:
    families = {name.partition(".")[0] for name in macros()}
    assert {"common", "edge", "incident", "roles", "polls", "rollback", "checkpoint", "heartbeat"} <= families
    assert len(macros()) > 100


def test_the_environment_escapes_values_in_macro_bodies() -> None:
    """finalize applies inside macros: a plain value is escaped, and `quoted` escapes once (no `&amp;lt;`)."""
    launch = SimpleNamespace(name="<!channel> & <@U123>")
    assert reply("incident.no_such_incident", number=7, launch=launch) == \
        "There is no INC-7 in &lt;!channel&gt; &amp; &lt;@U123&gt;."
    assert reply("incident.not_a_severity", word="<!here>&`x`") == "`&lt;!here&gt;&amp;'x'` is not a severity."
    assert reply("incident.needs_id", verb="<b>") == "`/incident &lt;b&gt;` needs an incident id."
    assert reply("heartbeat.not_a_duration", word="x" * 50) == "`" + "x" * 40 + "…` is not a duration like 15m or 1h."


def test_a_reply_and_its_usage_are_escaped_once() -> None:
    error = CommandError(reply("decision.needs_text"), reply("decision.usage"))
    assert reply("decision.usage") == "/decision <text> (name INC-7 to link it to an incident)"  # plain text
    assert error.reply == "A decision needs its text.\nUsage: /decision &lt;text&gt; (name INC-7 to link it to an incident)"
    quoted = CommandError(reply("common.not_a_user", token="a&b"), "/x <y>")
    assert quoted.reply == "`a&amp;b` is not a Slack user like @alice.\nUsage: /x &lt;y&gt;"
    assert CommandError(reply("rollback.cancelled")).reply == "You cancelled the rollback request; nothing was broadcast."


# -- no reply written in Python ------------------------------------------------------------------
def _words(node: ast.AST | None) -> bool:
    """A string written in the code (a literal, an f-string, or a sum of them) rather than a call."""
    if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return True
    return isinstance(node, ast.BinOp) and (_words(node.left) or _words(node.right))


def _named(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def written_replies(source: str) -> list[int]:
    """Lines where a reply, an error, a refusal, a form error or a usage line is a string in the code."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            kw = {k.arg: k.value for k in node.keywords}
            name = _named(node)
            if name == "CommandError":
                parts = [*node.args[:2], kw.get("message"), kw.get("usage")]
            elif name == "Refused":  # its second argument names the command for the audit trail
                parts = [*node.args[:1], kw.get("message")]
            elif name == "Result":
                errors = kw.get("view_errors")
                parts = [kw.get("reply"), *(errors.values if isinstance(errors, ast.Dict) else [])]
            elif name == "slash":
                parts = [kw.get("usage")]
            else:
                continue
            if any(_words(part) for part in parts):
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("USAGE")
                                                  for t in node.targets) and _words(node.value):
            lines.append(node.lineno)
    return lines


def test_no_reply_is_written_in_python() -> None:
    paths = [*sorted((ROOT / "commands").glob("*.py")), ROOT / "bot" / "dispatch.py"]
    found = {str(p.relative_to(ROOT)): written_replies(p.read_text(encoding="utf-8")) for p in paths}
    assert {path: lines for path, lines in found.items() if lines} == {}
    assert len(found) > 20  # the rule looked at the real files


def test_the_rule_catches_every_written_reply() -> None:
    assert written_replies('raise CommandError(f"{x} is not a severity.", USAGE)') == [1]
    assert written_replies('raise CommandError(reply("a.b"), "/x <y>")') == [1]
    assert written_replies('raise Refused("Only the commander.", "/x")') == [1]
    assert written_replies('raise Refused(reply("roles.refused_commander", command=c, holder=h), "/x")') == []
    assert written_replies('return Result(reply="Done " + name)') == [1]
    assert written_replies('return Result(view_errors={"severity": "Choose one."})') == [1]
    assert written_replies('USAGE = "/x <y>"\n@slash("/x", usage="/x", summary="s")\ndef f(): pass') == [1, 2]
    assert written_replies('raise CommandError(reply("a.b", word=w), USAGE)\nResult(reply=reply("a.c"))\n'
                           'Result(view_errors={"f": reply("a.d")})\nUSAGE = reply("a.usage")') == []


# -- end to end: the same words as before, over signed HTTP ------------------------------------
def text_of(bot: Harness, command: str, text: str, user: str = "U0COMMANDER") -> str:
    response = bot.slash(command, text, user=user)
    assert response.status_code == 200, response.text
    assert response.json()["response_type"] == "ephemeral"
    return str(response.json()["text"])


def test_an_unknown_severity_and_its_usage(bot: Harness) -> None:
    assert text_of(bot, "/incident", "sev9 checkout down") == \
        f"`sev9` is not a severity or an /incident subcommand.\nUsage: {INCIDENT_USAGE}"
    assert text_of(bot, "/incident", "sev1") == ("An incident needs a summary.\nUsage: /incident sev1 &lt;summary&gt; "
                                                 "(severity: sev1-sev4 or critical/high/medium/low)")
    assert bot.incidents() == []


def test_an_unknown_incident_and_a_hostile_one(bot: Harness) -> None:
    assert text_of(bot, "/incident", "ack INC-99") == f"There is no INC-99 in HotDash Control Center.\nUsage: {INCIDENT_USAGE}"
    assert text_of(bot, "/incident", "ack <!channel>&") == \
        f"`&lt;!channel&gt;&amp;` is not an incident id like INC-7.\nUsage: {INCIDENT_USAGE}"
    assert text_of(bot, "/incident", "sev1 checkout down") == "Declared INC-1; the war room has been told."
    assert text_of(bot, "/incident", "sev INC-1 <@U0EXEC>") == \
        "`&lt;@U0EXEC&gt;` is not a severity.\nUsage: /incident sev INC-7 sev2"
    assert text_of(bot, "/incident", "ack INC-1") == "You acknowledged INC-1."


def test_a_refusal_names_the_commander_and_is_audited(bot: Harness) -> None:
    assert text_of(bot, "/rollback", "checkout errors", user="U0CX") == \
        "Only the commander can use `/rollback`. The commander is <@U0COMMANDER>."
    [refusal] = bot.events("command.refused")
    assert refusal.payload["command"] == "/rollback"
    assert refusal.payload["reason"] == "Only the commander can use `/rollback`. The commander is <@U0COMMANDER>."


def test_help_lists_every_usage_as_before(bot: Harness) -> None:
    lines = text_of(bot, "/warroom", "help").split("\n")
    assert lines[0] == "*warroom* runs the launch from this channel:"
    assert "• `/decision` record a decision in the decision log (anyone) — " \
           "`/decision &lt;text&gt; (name INC-7 to link it to an incident)`" in lines
    assert "• `/gonogo` go/no-go poll of the required roles (commander starts; holders vote) — " \
           "`/gonogo  ·  /gonogo go [reason]  ·  /gonogo nogo [reason]  ·  /gonogo close`" in lines
    assert "• `/warroom` this list — `/warroom help`" in lines
    assert text_of(bot, "/warroom", "frob") == "`frob` is not a /warroom subcommand.\nUsage: /warroom help"

