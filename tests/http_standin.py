"""The one HTTP server the tests' stand-ins for outside services run on: threaded, on 127.0.0.1, on a port
the OS picks. A stand-in keeps only what its service answers.

    class Flags(HttpStandin):                       # records every request in `calls`
        def answer(self, request: Request) -> Reply:
            return Reply(200, {"ok": True})

    with Flags() as flags:                          # or flags = Flags().start(); …; flags.stop()
        flags.answer_next(503, times=2)             # the script: these first, then `answer`
        flags.answer_next(200, delay=3)             # lands, but answers after the client gave up
        … flags.calls[0].json, flags.calls[0].headers["Idempotency-Key"] …

A stand-in that records in its own words (the Slack Web API's) extends LoopbackServer and its `respond`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query string
    headers: dict[str, str]  # as the client spelled them
    body: bytes
    json: Any  # the body as JSON; None when empty or not JSON

    def header(self, name: str, default: str = "") -> str:
        """A header whatever the case the client wrote its name in."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), default)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)  # sent as JSON, unless bytes or str
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (the request has landed)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode()


class LoopbackServer:
    """Serves every method with `respond`, over HTTP/1.1 (keep-alive, as the clients use it)."""

    name = "http-standin"  # its thread's

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    def respond(self, request: Request) -> Reply:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.respond))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                         name=self.name).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the stand-in is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


class HttpStandin(LoopbackServer):
    """Records every request in `calls` and answers from the script (`answer_next`), then with `answer`."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Request] = []
        self._script: list[tuple[str | None, Reply]] = []  # (the method it answers, or any), the reply
        self._lock = threading.RLock()  # `answer` runs under it: a stand-in's own state needs no other

    def answer_next(self, status: int, body: Any = None, *, headers: Mapping[str, str] | None = None,
                    delay: float = 0.0, times: int = 1, method: str | None = None) -> None:
        """The next `times` requests (of `method` only, when given) get this reply."""
        with self._lock:
            self._script += [(method, Reply(status, {} if body is None else body, headers or {}, delay))] * times

    def answer(self, request: Request) -> Reply:
        return Reply(404, {})

    def respond(self, request: Request) -> Reply:
        with self._lock:
            self.calls.append(request)
            scripted = next((i for i, (method, _) in enumerate(self._script) if method in (None, request.method)), None)
            return self._script.pop(scripted)[1] if scripted is not None else self.answer(request)


def free_port() -> int:
    """A loopback port nobody listens on (until someone does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _handler(respond: Callable[[Request], Reply]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = respond(Request(self.command, self.path, dict(self.headers), body, _parsed(body)))
            if reply.delay:
                time.sleep(reply.delay)
            data = reply.encoded()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = serve  # noqa: N815

    return Handler
