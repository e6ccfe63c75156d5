"""Times as the bot writes them in Slack messages: Slack date tokens with the launch's zone in the fallback."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

LAUNCH_ZONE = ZoneInfo("America/Los_Angeles")  # tests/conftest.py TEST_CONFIG
# the bot's own form (commands/render.py slack_time): a time and its fallback, never a link part
DATE_TOKEN = re.compile(r"<!date\^(\d+)\^([{}a-z_ ]+)\|([^<>^]*)>")


def at(hhmm: str, day: str = "2025-10-16") -> str:
    """`at("10:07")` -> `<!date^1760634420^{time}|10:07 PDT>`: 10:07 on the test launch's day, in its zone."""
    local = datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=LAUNCH_ZONE)
    return f"<!date^{int(local.timestamp())}^{{time}}|{local:%H:%M %Z}>"


def as_read(text: str) -> str:
    """A message with every date token shown by its fallback, as the shell prints it."""
    return DATE_TOKEN.sub(lambda m: m.group(3), text)
