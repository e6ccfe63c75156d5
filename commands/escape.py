"""Slack mrkdwn escaping: exactly `&`, `<` and `>` (FIELD-NOTES: nothing else)."""

from __future__ import annotations


def slack_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(token: str, limit: int = 40) -> str:
    """A piece of what the user typed, for an error message: clipped, escaped, in backticks."""
    clipped = token[:limit] + ("…" if len(token) > limit else "")
    return "`" + slack_escape(clipped.replace("`", "'")) + "`"
