"""Who may steer: commands that are the commander's refuse anyone else, naming who holds the role."""

from __future__ import annotations

from sqlmodel import select

from commands.context import Context, role_holder
from commands.errors import Refused
from commands.render import render
from db.models import Launch


def require_commander(ctx: Context, command: str) -> str:
    """The commander's user id, or Refused (written to the audit trail by the dispatcher)."""
    assert ctx.launch.id is not None
    holder = role_holder(ctx.session, ctx.launch.id, "commander")
    if holder is None:
        raise Refused(f"Only the commander can run `{command}`, and no one holds the commander role: "
                      "set one with `/role commander @user`.", command)
    if ctx.user != holder:
        raise Refused(f"Only the commander ({render('who.j2', user=holder)}) can run `{command}`.", command)
    return holder


def locked_launch(ctx: Context) -> Launch:
    """The launch row, locked for this transaction and freshly read (PostgreSQL: FOR UPDATE)."""
    launch = ctx.session.exec(
        select(Launch).where(Launch.id == ctx.launch.id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    ctx.launch = launch
    return launch
