"""The war-room board: a read-only live page for the screen on the wall, on the `serve` port.

- `GET /board?token=…`: the page (templates/board/board.html.j2); its script (templates/board/static/
  board.js) polls `/board.json` every two seconds and draws the state with uPlot (vendored, MIT,
  its licence beside it). Every user text reaches the page as JSON and is set as text, never as HTML.
- `GET /board.json?token=…`: the state (commands/home.py `board_state`).
- `GET /board/static/<file>`: the page's own assets; nothing comes from another host (the
  Content-Security-Policy says so to the browser).

Off (404) unless WARROOM_BOARD_TOKEN is set; a missing or wrong token is 401. The token is compared
in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable
from functools import lru_cache
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import select

from bot.dispatch import Dispatcher
from commands.context import Context
from commands.home import board_state
from commands.render import TEMPLATES
from db.models import Launch
from db.session import reading

log = logging.getLogger("warroom.board")
BOARD = TEMPLATES / "board"
STATIC = BOARD / "static"
POLL_MS = 2000  # the page asks for the state this often: a change shows within 5 s
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".txt": "text/plain; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]

StartResponse = Callable[..., Any]


@lru_cache(maxsize=1)
def page_environment() -> Environment:
    """HTML, so HTML escaping (not the Slack environment of commands/render.py)."""
    return Environment(loader=FileSystemLoader(BOARD), autoescape=select_autoescape(["html", "j2"]),
                       trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=1)
def assets() -> dict[str, tuple[bytes, str]]:
    """The page's files by name, read once: a name not listed here is not served (no paths)."""
    return {p.name: (p.read_bytes(), CONTENT_TYPES.get(p.suffix, "application/octet-stream"))
            for p in STATIC.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES}


class Board:
    def __init__(self, dispatcher: Dispatcher, token: str | None) -> None:
        self.dispatcher = dispatcher
        self.token = token.encode() if token else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.token is None:
            return _send(start_response, 404, b'{"error": "not found"}', "application/json")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _send(start_response, 405, b'{"error": "GET only"}', "application/json")
        if path.startswith("/board/static/"):
            asset = assets().get(path.removeprefix("/board/static/"))
            if asset is None:
                return _send(start_response, 404, b'{"error": "not found"}', "application/json")
            return _send(start_response, 200, asset[0], asset[1], cache="public, max-age=300")
        if path not in ("/board", "/board.json"):
            return _send(start_response, 404, b'{"error": "not found"}', "application/json")
        if not self.allowed(environ.get("QUERY_STRING") or ""):
            log.warning("board: refused a request without the right token", extra={"path": path})
            return _send(start_response, 401, b'{"error": "the board needs its token: /board?token=..."}',
                         "application/json")
        if path == "/board.json":
            return _send(start_response, 200, json.dumps(self.state()).encode(), "application/json")
        html = page_environment().get_template("board.html.j2").render(name=self.launch_name(), poll_ms=POLL_MS)
        return _send(start_response, 200, html.encode(), "text/html; charset=utf-8")

    def allowed(self, query: str) -> bool:
        assert self.token is not None
        given = (parse_qs(query).get("token") or [""])[0].encode()
        return hmac.compare_digest(given, self.token)

    def launch_name(self) -> str:
        return self.dispatcher.config.launch_name

    def state(self) -> dict[str, Any]:
        """The launch's state, read in a read-only transaction (a screen polling never waits for a writer)."""
        config = self.dispatcher.config
        with reading(self.dispatcher.engine) as session:
            launch = session.exec(select(Launch).where(Launch.name == config.launch_name)).first()
            if launch is None:  # the runtime creates it at start-up: only a database wiped under it
                return {"error": "no launch"}
            ctx = Context(session=session, now=self.dispatcher.clock.now(), config=config, user="board", launch=launch)
            return {"poll_ms": POLL_MS, **board_state(ctx)}


def _send(start_response: StartResponse, status: int, body: bytes, content_type: str, *,
          cache: str = "no-store") -> list[bytes]:
    start_response(f"{status} {HTTPStatus(status).phrase}", [
        ("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", cache),
        *SECURITY_HEADERS])
    return [body]
