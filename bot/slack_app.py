"""The Bolt app: listeners that parse what Slack sent, call the dispatcher, and ack.

Nothing here posts to a channel: commands write outbox rows and the outbox posts.
The only Web API calls made here are the ones that cannot wait: `views.open`
(a trigger id lives 3 s) and ephemeral replies to button clicks (response_url).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest, BoltResponse, Respond
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from sqlalchemy.exc import IntegrityError

from bot.dispatch import Dispatcher, Replayed, remember_request
from bot.payloads import Rejected, clean, parse, request_key
from commands import home
from commands.incident import declaration_modal
from commands.pins import pin_requested
from commands.render import reply
from db.models import Activity, Launch
from db.session import transaction

log = logging.getLogger("warroom.slack")


def auth_test(client: WebClient, attempts: int = 5) -> dict[str, Any]:
    """Who the bot is, asked of SLACK_API_URL once at start-up (retried while Slack is unreachable)."""
    for attempt in range(attempts):
        try:
            return dict(client.auth_test().data)  # type: ignore[arg-type]
        except Exception as exc:
            if attempt == attempts - 1:
                raise
            log.warning("auth.test failed; retrying", extra={"error": type(exc).__name__})
            time.sleep(min(2**attempt, 10))
    raise AssertionError("unreachable")


def build_bolt_app(dispatcher: Dispatcher, client: WebClient, signing_secret: str, identity: dict[str, Any]) -> App:
    def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id or identity.get("team_id"),
                               bot_token=client.token, bot_id=identity.get("bot_id"),
                               bot_user_id=identity.get("user_id"))

    app = App(signing_secret=signing_secret, client=client, authorize=authorize, process_before_response=True,
              request_verification_enabled=True, url_verification_enabled=True)
    replies = ThreadPoolExecutor(max_workers=4, thread_name_prefix="respond")

    app.use(WellFormed())

    @app.middleware
    def once_per_event(body: dict[str, Any], next: Any) -> BoltResponse | None:  # noqa: A002
        """Slack retries events it thinks were lost (X-Slack-Retry-Num): act on each event id once."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not _first_time(dispatcher, f"event:{event_id}"):
            return BoltResponse(status=200, body="")
        return next()

    def on_command(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        result = dispatcher.slash(body.get("command", ""), body.get("text") or "", body.get("user_id", ""),
                                  body.get("channel_id"), request_key=context.get("request_key"))
        if result.modal is not None:
            ack()
            client.views_open(trigger_id=body.get("trigger_id", ""), view=result.modal)
            return
        ack(response_type="ephemeral", text=result.reply or reply("edge.done"))

    # one listener per kind of request, matching all: the dispatcher knows warroom's commands, buttons
    # and forms and answers the rest itself (Bolt tries listeners one by one: one is cheapest)
    app.command(re.compile(r"^/"))(on_command)

    def on_action(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        value = action.get("value") or (action.get("selected_option") or {}).get("value") or ""
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        message_ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
        result = dispatcher.action(action.get("action_id", ""), str(value), (body.get("user") or {}).get("id", ""),
                                   channel, message_ts=message_ts, request_key=context.get("request_key"))
        if result.reply and body.get("response_url"):
            replies.submit(_respond_quietly, respond, result.reply)
        if (body.get("view") or {}).get("type") == "home":  # pressed on App Home: show the clicker what came of it
            dispatcher.run(body["user"]["id"], None, lambda ctx: home.clicked(ctx, result.reply), "home button")

    app.action(re.compile(r".*"))(on_action)  # unknown buttons too: acked, told to the clicker

    def on_view(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        values = {block: next(iter(actions.values()), {}) for block, actions in
                  ((view.get("state") or {}).get("values") or {}).items() if isinstance(actions, dict)}
        flat = {block: str(v.get("value") or (v.get("selected_option") or {}).get("value") or "")
                for block, v in values.items() if isinstance(v, dict)}
        if view.get("private_metadata"):  # a declaration from a message: the link to it
            flat.setdefault("source", str(view["private_metadata"]))
        result = dispatcher.view(view.get("callback_id", ""), flat, (body.get("user") or {}).get("id", ""), None,
                                 request_key=context.get("request_key"))
        if result.view_errors:
            ack(response_action="errors", errors=result.view_errors)
        else:
            ack()

    app.view(re.compile(r".*"))(on_view)

    @app.event("message")
    def on_message(event: dict[str, Any]) -> None:
        """Operator engagement: people writing in a war room."""
        user, channel = event.get("user"), event.get("channel")
        if not user or event.get("bot_id") or event.get("subtype"):
            return
        from sqlmodel import select

        with transaction(dispatcher.engine) as session:
            launch = session.exec(select(Launch).where(Launch.war_room == channel)).first()
            if launch is not None:
                session.add(Activity(launch_id=launch.id, user_id=user, at=dispatcher.clock.now(), source="message"))

    def on_declare_shortcut(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        """The `declare_incident` message shortcut: the declare modal with the message's text, opened first
        (the trigger id lives 3 s); the link to the message (chat.getPermalink) follows by views.update."""
        key = context.get("request_key")
        if key and not _first_time(dispatcher, key):
            raise Replayed()
        ack()
        message, channel = body.get("message") or {}, (body.get("channel") or {}).get("id")
        opened = client.views_open(trigger_id=body.get("trigger_id", ""),
                                   view=declaration_modal(dispatcher.config, message.get("text") or ""))
        view = opened.get("view") or {}
        if channel and message.get("ts") and view.get("id"):
            replies.submit(_link_declaration, client, dispatcher, view, channel, message)

    app.shortcut("declare_incident")(on_declare_shortcut)

    @app.event("reaction_added")
    def on_reaction(event: dict[str, Any]) -> None:
        """A :pushpin: on a message in an incident's channel or thread: into its timeline (commands/pins.py)."""
        item = event.get("item") or {}
        if event.get("reaction") != "pushpin" or item.get("type") != "message" or not event.get("user"):
            return
        channel, ts = str(item.get("channel") or ""), str(item.get("ts") or "")
        dispatcher.run(event["user"], channel, lambda ctx: pin_requested(ctx, channel, ts), "reaction pushpin")
    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        """The Home tab opened: publish the viewer's home (the Messages tab needs nothing)."""
        if event.get("tab") == "home" and event.get("user"):
            dispatcher.run(event["user"], None, home.opened, "app_home_opened")

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        if isinstance(error, Replayed):
            return BoltResponse(status=401, body='{"error": "replayed request"}',
                                headers={"content-type": "application/json"})
        log.error("listener failed", extra={"error": type(error).__name__, "type": body.get("type")}, exc_info=error)
        return BoltResponse(status=200, body="Sorry, warroom hit an error; nothing was changed. Try again.")

    return app


class WellFormed(Middleware):
    """Only the fields warroom reads, of the types they must have (bot/payloads.py), whichever way the
    request came (HTTP or Socket Mode); and the key under which a command or click is remembered.
    A Middleware class, not a function: Bolt builds a function middleware's arguments from the body,
    which fails on the very payloads this rejects."""

    def process(self, *, req: BoltRequest, resp: BoltResponse,
                next: Callable[[], BoltResponse]) -> BoltResponse:  # noqa: A002
        try:
            raw = parse(req.raw_body, req.content_type or "") if req.mode == "http" else req.body
            req.body = clean(raw)
        except Rejected as rejected:
            return BoltResponse(status=rejected.status, body=json.dumps({"error": rejected.error}),
                                headers={"content-type": "application/json"})
        if req.body.get("type") == "app_rate_limited":  # Slack dropped some of our events: say so, answer 200
            log.warning("Slack rate-limited the app's events", extra={"minute": raw.get("minute_rate_limited")})
            return BoltResponse(status=200, body="")
        signature = (req.headers.get("x-slack-signature") or [None])[0]
        req.context["request_key"] = request_key(req.body, signature)
        return next()


def _first_time(dispatcher: Dispatcher, key: str) -> bool:
    """The event's key kept as a command's is (remember_request): False when Slack sent it before."""
    try:
        with transaction(dispatcher.engine) as session:
            remember_request(session, key, dispatcher.clock.now())
        return True
    except (Replayed, IntegrityError):
        return False


def _link_declaration(client: WebClient, dispatcher: Dispatcher, view: dict[str, Any], channel: str,
                      message: dict[str, Any]) -> None:
    """After the modal is open: the message's permalink, into the modal (and so into the declaration)."""
    try:
        link = client.chat_getPermalink(channel=channel, message_ts=message["ts"]).get("permalink")
        client.views_update(view_id=view["id"], hash=view.get("hash"),
                            view=declaration_modal(dispatcher.config, message.get("text") or "", link))
    except Exception as exc:  # the form works without the link
        log.warning("could not link the declare form to its message", extra={"error": type(exc).__name__})


def _respond_quietly(respond: Respond, text: str) -> None:
    try:
        respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception as exc:  # an ephemeral note is not worth failing over
        log.warning("ephemeral reply failed", extra={"error": type(exc).__name__})
