"""User text cannot fake a message's layout (issue 18): no line of it starts a quote, a code fence it
opens is closed within it, no link previews, and long text is clipped field by field so the incident's
id and its owner's mention survive. Through the real stack, and as properties over every command."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import commands.families  # noqa: F401  (every family registers its commands)
from commands.registry import SLASH
from commands.render import environment
from tests.harness import Harness

FAKE = "S\n> *FAKE* Rollback initiated at 10:00"
PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def texts(payload: dict[str, Any]) -> list[str]:
    """Every piece of text a post shows: its text and every text object of its blocks."""
    out = [payload.get("text") or ""]
    for block in payload.get("blocks") or []:
        for obj in (block.get("text"), *block.get("fields", ()), *block.get("elements", ())):
            if isinstance(obj, dict) and isinstance(obj.get("text"), str):
                out.append(obj["text"])
    return out


def assert_layout_holds(payloads: list[dict[str, Any]]) -> None:
    for payload in payloads:
        for text in texts(payload):
            assert text.count("```") % 2 == 0, text
            for line in text.splitlines():
                quoted = line.lstrip().startswith((">", "&gt;"))
                assert not (quoted and "FAKE" in line), text  # the injected line is no quote


def test_a_summary_cannot_fake_a_quoted_broadcast_or_swallow_the_message(bot: Harness) -> None:
    bot.slash("/incident", "sev2 " + FAKE.replace("\n", "\n") + " ```unclosed")
    bot.deliver()
    (notification,) = [p for p in bot.posts("C0WARROOM") if "INCIDENT" in (p.get("text") or "")]
    assert_layout_holds([notification])
    assert "FAKE" in notification["text"] and notification["text"].rstrip().endswith("(INC-1)")
    assert notification["unfurl_links"] is False and notification["unfurl_media"] is False
    assert all(obj.get("verbatim") for block in notification["blocks"]
               for obj in [block.get("text"), *block.get("elements", ())] if obj and obj.get("type") == "mrkdwn")


def test_long_text_is_clipped_field_by_field_keeping_the_id_and_the_owner(bot: Harness) -> None:
    long = "&<>" * 700  # 2,100 characters, five times that once escaped
    bot.slash("/incident", f"sev1 {'s' * 500} | impact: {long[:2000]} | workaround: {long[:1400]}")
    bot.deliver()
    (notification,) = [p for p in bot.posts("C0WARROOM") if "INCIDENT" in (p.get("text") or "")]
    text = notification["text"]
    assert len(text) <= 3000 and "(INC-1)" in text and "Owner: <@U0COMMANDER>" in text
    assert text.count("…") == 2 and not any(re.search(r"&[a-z]{0,3}\Z", piece) for piece in text.split("…")[:-1])


@PROPERTY
@given(name=st.sampled_from(sorted(SLASH)),
       words=st.lists(st.sampled_from(["sev2", "INC-1", FAKE, "```", "> quote", "&", "<!channel>", "x" * 600,
                                       "update", "ack", "|", "impact:", "resolve", "every", "5m", "note"]),
                      min_size=1, max_size=6))
def test_no_command_lets_user_text_fake_the_layout(bot: Harness, name: str, words: list[str]) -> None:
    bot.slash("/incident", "sev3 something to act on")
    before = len(bot.posts())
    bot.slash(name, " ".join(words))
    bot.deliver()
    assert_layout_holds(bot.posts()[before:])


@settings(max_examples=200, deadline=None)
@given(value=st.text(alphabet=st.sampled_from(list("ab>&<`\n \t*")), max_size=80), limit=st.integers(5, 60))
def test_any_value_is_layout_safe_and_clipped_as_slack_counts(value: str, limit: int) -> None:
    out = environment().from_string("{{ v }}").render(v=value)
    clipped = environment().from_string("{{ v|clip(n) }}").render(v=value, n=limit)
    for rendered in (out, clipped):
        assert rendered.count("```") % 2 == 0
        assert not any(line.lstrip(" \t").startswith(("&gt;", ">")) for line in rendered.split("\n"))
        assert "<" not in rendered and ">" not in rendered
    assert len(clipped.replace("\u200b", "")) <= limit + 3  # the clip, plus a fence it had to close
