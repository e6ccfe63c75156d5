"""The yardsticks for bench/ack.py: a Bolt app that only acks `/incident`, with warroom's Bolt
settings (process_before_response, a static authorize) on waitress with `serve`'s settings.

With DATABASE_URL set, it first stores one row per request (the request's replay key, in
`seen_requests`, kept and written once per shared transaction as warroom keeps its keys) through
warroom's engine and shared transactions (db/group_commit.py), then acks: the least any "stored,
then acked" command can cost, to set beside a real declaration."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slack_bolt import Ack, App  # noqa: E402
from slack_bolt.adapter.wsgi import SlackRequestHandler  # noqa: E402
from slack_bolt.authorization import AuthorizeResult  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bot.server import make_server  # noqa: E402
from commands.clock import SystemClock  # noqa: E402
from commands.context import defer  # noqa: E402
from db.group_commit import GroupCommit, Undo  # noqa: E402
from db.models import SeenRequest  # noqa: E402
from db.session import make_engine, migrate  # noqa: E402


def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token="xoxb-bare", bot_id="B0BARE",
                           bot_user_id="U0BARE")


bolt = App(signing_secret=os.environ["SLACK_SIGNING_SECRET"], authorize=authorize, process_before_response=True)


DATABASE_URL = os.environ.get("DATABASE_URL")
writes: GroupCommit | None = None
if DATABASE_URL:
    engine = make_engine(DATABASE_URL)
    migrate(engine)
    writes = GroupCommit(engine, committed=lambda: None)
clock = SystemClock()


def store_key(session: Session, undo: Undo, key: str) -> None:
    """As warroom keeps a request's key: deferred, so a shared transaction writes all of them at once."""
    with undo():
        defer(session, SeenRequest, key=key, seen_at=clock.now())


@bolt.command("/incident")
def incident(ack: Ack, body: dict[str, Any]) -> None:
    if writes is not None:
        key = str(body.get("trigger_id"))
        writes.run(lambda session, undo: store_key(session, undo, key))
    ack(response_type="ephemeral", text="ok")


handler = SlackRequestHandler(bolt, path="/slack/events")


def app(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")])
        return [b'{"db":"ok"}']
    return handler(environ, start_response)


if __name__ == "__main__":
    make_server(app, int(os.environ.get("PORT", "3000"))).run()
