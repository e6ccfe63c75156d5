"""Shared helpers for the commander's console tests (roles, checkpoint, rollback, polls, decisions)."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from db.models import AuditEvent, Decision, MessageRef, OutboxMessage, RoleAssignment
from tests.harness import Harness

COMMANDER, SCRIBE, ENG, DEVOPS, CX, EXEC = "U0COMMANDER", "U0SCRIBE", "U0ENG", "U0DEVOPS", "U0CX", "U0EXEC"
STRANGER = "U0STRANGER"
WAR_ROOM, OPERATORS = "C0WARROOM", "C0OPERATORS"
INJECTION = "<!channel> <@U0EXEC> & <https://evil.example|click>"


def reply(response: Any) -> str:
    """The ephemeral text of a slash command's answer."""
    assert response.status_code == 200, response.text
    return str(response.json()["text"])


def slash(bot: Harness, command: str, text: str = "", *, user: str = COMMANDER) -> str:
    return reply(bot.slash(command, text, user=user))


def ts_of(bot: Harness, ref: str) -> str:
    with bot.session() as s:
        row = s.get(MessageRef, ref)
        assert row is not None, f"no message posted for {ref}"
        return row.ts


def click(bot: Harness, action_id: str, value: str, *, user: str = COMMANDER, ref: str | None = None) -> str:
    """Click a button on the message posted for `ref`; return the ephemeral reply it produced."""
    before = len(bot.responses())
    kwargs = {"message_ts": ts_of(bot, ref)} if ref else {}
    r = bot.block_actions(action_id, value, user=user, **kwargs)
    assert r.status_code == 200, r.text
    responses = bot.wait_for_responses(before + 1)
    assert len(responses) > before, "the click got no ephemeral reply"
    return str(responses[-1]["text"])


def decisions(bot: Harness, kind: str | None = None) -> list[Decision]:
    with bot.session() as s:
        q = select(Decision).order_by(Decision.id)
        if kind:
            q = q.where(Decision.kind == kind)
        return list(s.exec(q).all())


def refusals(bot: Harness) -> list[AuditEvent]:
    return bot.events("command.refused")


def assignments(bot: Harness) -> list[RoleAssignment]:
    with bot.session() as s:
        return list(s.exec(select(RoleAssignment).order_by(RoleAssignment.id)).all())


def outbox_count(bot: Harness) -> int:
    with bot.session() as s:
        return len(s.exec(select(OutboxMessage)).all())


def message(bot: Harness, channel: str, ts: str) -> dict[str, Any]:
    """The message as it stands now in the stand-in (after chat.update)."""
    for m in bot.standin.messages.get(channel, []):
        if m["ts"] == ts:
            return m
    raise AssertionError(f"no message {ts} in {channel}")


def texts(bot: Harness, channel: str = WAR_ROOM) -> list[str]:
    return [p["text"] for p in bot.posts(channel)]
