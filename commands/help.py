"""`/warroom help`: every command with one line each."""

from __future__ import annotations

from commands.context import Context, Result
from commands.errors import CommandError
from commands.escape import quote
from commands.registry import SLASH, slash
from commands.render import render


@slash("/warroom", usage="/warroom help", summary="this list")
def warroom_command(ctx: Context, text: str) -> Result:
    if text.strip().lower() not in ("", "help"):
        raise CommandError(f"{quote(text)} is not a /warroom subcommand.", "/warroom help")
    return Result(reply=render("help.j2", commands=sorted(SLASH.values(), key=lambda c: c.name)))
