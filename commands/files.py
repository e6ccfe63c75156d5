"""The Jinja environment for FILES (the markdown retrospective), not for Slack.

`commands/render.py` escapes every value for Slack mrkdwn (`&` -> `&amp;` …); in a
markdown file that would show as `&amp;`. This environment does not: values are
written as typed, except what would break markdown itself — `|` in table cells,
line breaks in cells, and `<`/`>` (a user's `<script>` or `<!channel>` must not
become HTML) — which the `md` and `cell` filters backslash-escape (CommonMark
renders `\\<` as `<`). Templates live in `templates/files/`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from commands.parse import format_duration
from commands.render import TEMPLATES

_MD_SPECIAL = re.compile(r"([\\<>|`\[\]@])")


def md_inline(value: Any) -> str:
    """User text inside a markdown paragraph or list item: one line, no HTML, no table breaks, and no
    link or image (`[` `]` escaped; `://`, `www.` and `@` too, so no bare URL or address is autolinked)."""
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", text).replace("://", ":\\/\\/").replace("www.", "www\\.")


def _stamp(value: datetime | None, tz: str = "UTC") -> str:
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _hhmm(value: datetime | None, tz: str = "UTC") -> str:
    return "--:--" if value is None else value.astimezone(ZoneInfo(tz)).strftime("%H:%M")


def _duration(value: timedelta | None) -> str:
    return "-" if value is None else format_duration(value)


def t_label(value: datetime | None, t0: datetime | None) -> str:
    """`T-30m`, `T0`, `T+1h5m` relative to T0 (empty when there is no T0)."""
    if value is None or t0 is None:
        return ""
    delta = value - t0
    seconds = int(round(delta.total_seconds()))
    if seconds == 0:
        return "T0"
    return ("T+" if seconds > 0 else "T-") + format_duration(timedelta(seconds=abs(seconds)))


@lru_cache(maxsize=1)
def file_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES / "files"), undefined=StrictUndefined, autoescape=False,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md_inline, cell=md_inline, stamp=_stamp, hhmm=_hhmm, duration=_duration, tlabel=t_label)
    return env


def render_file(name: str, **values: Any) -> str:
    return file_environment().get_template(name).render(**values)
