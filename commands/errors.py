"""What a command raises when it will not act: the user sees an ephemeral message."""

from __future__ import annotations

from markupsafe import Markup


class CommandError(Exception):
    """Malformed or impossible: nothing is stored, the actor is told why and how to write it.
    The message is a rendered reply (commands/render.py `reply`); the usage is plain text."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    @property
    def reply(self) -> str:
        if not self.usage:
            return self.message
        from commands.render import reply  # here, not above: render imports parse, which raises these

        return reply("common.with_usage", message=Markup(self.message), usage=self.usage)


class Refused(CommandError):
    """The actor may not do this (wrong role). Refusals are written to the audit trail."""

    def __init__(self, message: str, command: str) -> None:
        super().__init__(message)
        self.command = command
