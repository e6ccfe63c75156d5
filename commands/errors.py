"""What a command raises when it will not act: the user sees an ephemeral message."""

from __future__ import annotations

from commands.escape import slack_escape


class CommandError(Exception):
    """Malformed or impossible: nothing is stored, the actor is told why and how to write it."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    @property
    def reply(self) -> str:
        return f"{self.message}\nUsage: {slack_escape(self.usage)}" if self.usage else self.message


class Refused(CommandError):
    """The actor may not do this (wrong role). Refusals are written to the audit trail."""

    def __init__(self, message: str, command: str) -> None:
        super().__init__(message)
        self.command = command
