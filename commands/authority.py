"""Who may steer (the console's commander rule) and the launch row locked for a change."""

from __future__ import annotations

from sqlmodel import select

from commands.context import Context
from db.models import Launch


def require_commander(ctx: Context, command: str) -> None:
    """The console's rule (commands/roles.py): refused, naming the holder, unless the actor is the commander."""
    from commands.roles import require_commander as console_rule

    console_rule(ctx, command)


def locked_launch(ctx: Context) -> Launch:
    """The launch row, locked for this transaction and freshly read (PostgreSQL: FOR NO KEY UPDATE): it
    serializes changes that read then write launch-wide state (roles, rollbacks, polls, T0) across replicas.
    """
    launch = ctx.session.exec(
        select(Launch).where(Launch.id == ctx.launch.id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()
    ctx.launch = launch
    return launch
