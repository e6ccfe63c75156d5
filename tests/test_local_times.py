"""Times in Slack messages are Slack date tokens (each reader sees their own zone); the fallback, and the
shell, show the launch's zone."""

from __future__ import annotations

import re
from pathlib import Path

from bot.dispatch import defang
from tests.harness import Harness
from tests.test_shell import in_process
from tests.times import DATE_TOKEN, as_read, at


def test_the_incident_notification_carries_date_tokens_with_the_launch_zone(bot: Harness) -> None:
    bot.slash("/incident", "sev1 checkout 500s")
    bot.deliver()
    [post] = bot.posts("C0WARROOM")
    assert f"Next update at {at('10:15')}." in post["text"]
    assert at("10:15") == "<!date^1760634900^{time}|10:15 PDT>"  # 17:15 UTC; each reader's own zone in Slack
    status = post["blocks"][1]["elements"][0]["text"]
    assert f"Declared by <@U0COMMANDER> at {at('10:00')}" in status
    assert not re.search(r"(?<![|\d])\d\d:\d\d(?! P[DS]T>)", post["text"]), "a time that is not a date token"
    assert "Next update at 10:15 PDT." in as_read(post["text"])


def test_a_refusal_keeps_its_date_tokens_and_still_defangs_what_the_user_typed() -> None:
    own = "<!date^1760634000^{time}|10:00 PDT>"
    assert defang(f"closed at {own}; you typed <!channel>") == f"closed at {own}; you typed &lt;!channel>"
    linked = "<!date^1760634000^{time}^https://evil.example|10:00>"  # a date token can carry a link: not ours
    assert defang(linked).startswith("&lt;!date")
    assert defang("<!date^1^{time}|x> <!here>").endswith("&lt;!here>")


def test_the_shell_prints_the_fallback(tmp_path: Path) -> None:
    out = in_process(tmp_path, ["/incident sev1 checkout down", ":quit"])
    line = next(line for line in out.splitlines() if "INCIDENT [Critical]" in line)
    assert re.search(r"Next update at \d\d:\d\d UTC\.", line), line  # the built-in config's zone
    assert "<!date" not in out and not DATE_TOKEN.search(out)
