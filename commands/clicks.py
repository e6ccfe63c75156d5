"""Which of our messages a button was clicked on: its MessageRef (`<prefix>:<id>`) by the clicked ts."""

from __future__ import annotations

from sqlmodel import select

from commands.context import Context
from db.models import MessageRef


def clicked_id(ctx: Context, prefix: str) -> int | None:
    """The id in the ref of the clicked message when it is a `<prefix>:<id>` message, else None."""
    if not ctx.message_ts:
        return None
    query = select(MessageRef).where(MessageRef.ts == ctx.message_ts,
                                     MessageRef.ref.startswith(f"{prefix}:"))  # type: ignore[attr-defined]
    if ctx.channel:
        query = query.where(MessageRef.channel == ctx.channel)
    row = ctx.session.exec(query).first()
    if row is None:
        return None
    tail = row.ref.split(":", 1)[1]
    return int(tail) if tail.isdigit() else None
