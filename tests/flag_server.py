"""A feature-flag service stand-in for the rollback webhook: answers 200, fails, is slow, or is down."""

from __future__ import annotations

from tests.http_standin import HttpStandin, Reply, Request, free_port


class FlagServer(HttpStandin):
    """Every request answers `status` (`{"ok": true}`) after `delay` seconds; the test changes both."""

    status = 200
    delay = 0.0

    @property
    def url(self) -> str:
        return f"{self.base_url}/api/flags/control-center"

    def answer(self, request: Request) -> Reply:
        return Reply(self.status, {"ok": True}, delay=self.delay)


def closed_port_url() -> str:
    """A loopback URL nobody listens on: the flag service is down."""
    return f"http://127.0.0.1:{free_port()}/api/flags/control-center"
