"""`/warroom help`: every command with one line each."""

from __future__ import annotations

from commands.context import Context, Result
from commands.errors import CommandError
from commands.registry import SLASH, slash
from commands.render import render, reply

USAGE = reply("help.usage")


@slash("/warroom", usage=USAGE, summary="this list")
def warroom_command(ctx: Context, text: str) -> Result:
    if text.strip().lower() not in ("", "help"):
        raise CommandError(reply("help.not_a_subcommand", word=text), USAGE)
    return Result(reply=render("help.j2", commands=sorted(SLASH.values(), key=lambda c: c.name)))
