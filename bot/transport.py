"""Slack Web API calls for the outbox, through slack_sdk's WebClient at SLACK_API_URL."""

from __future__ import annotations

import logging
from typing import Any
from urllib.error import URLError

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.outbox import (
    ANSWERED_METHODS,
    AUTH_ERRORS,
    METADATA_EVENT,
    PERMANENT_ERRORS,
    LookupFailed,
    LookupImpossible,
    Outcome,
)
from db.models import OutboxMessage

log = logging.getLogger("warroom.transport")
LOOKUP_PAGES = 10  # 2,000 messages back: far more than one channel gets while a send is in doubt
# a lookup answered so will be answered so again: the bot cannot read the channel
LOOKUP_IMPOSSIBLE = frozenset({"not_in_channel", "channel_not_found", "missing_scope",
                               "method_not_supported_for_channel_type"})
# incident channels: answers that mean "already done", which a repeat (or a person) may have caused
ALREADY_DONE = {"conversations.invite": "already_in_channel", "conversations.archive": "already_archived"}
MAX_PINNED_TEXT = 4000


def make_client(token: str | None, api_url: str, *, timeout: float = 10, sdk_retries: bool = True) -> WebClient:
    """A WebClient at SLACK_API_URL.

    With `sdk_retries`, slack_sdk retries a 429 (after Retry-After) and a 5xx once: right for the calls
    Bolt makes in the request path (views.open). The outbox's client has none (`sdk_retries=False`):
    a blind 5xx retry can post twice and a 429 retry sleeps in a delivery worker, so the outbox
    schedules every retry itself and looks a doubtful post up before sending it again.
    """
    handlers = [RateLimitErrorRetryHandler(max_retry_count=1), ServerErrorRetryHandler(max_retry_count=1)]
    return WebClient(token=token, base_url=api_url, timeout=timeout,  # type: ignore[arg-type]
                     retry_handlers=handlers if sdk_retries else [])


class SlackTransport:
    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._bot_user: str | None = None

    def send(self, message: OutboxMessage, thread_ts: str | None, update_ts: str | None) -> Outcome:
        if message.method == "files.upload":
            return self.upload(message, thread_ts)
        if message.method in ANSWERED_METHODS:
            return self.converse(message)
        args: dict[str, Any] = {"channel": message.channel, **message.payload}
        if message.method == "views.publish":  # a person's App Home (user_id, view): no channel
            args = dict(message.payload)
        elif message.method == "chat.postMessage":
            args["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"outbox_id": message.id}}
            if thread_ts:
                args["thread_ts"] = thread_ts
            else:  # the thread's parent never landed: the reply is posted in the channel itself
                args.pop("reply_broadcast", None)
        elif message.method == "chat.update":
            args["ts"] = update_ts
        try:
            response = self.client.api_call(message.method, json=args)
            return Outcome(ok=True, ts=response.get("ts") or update_ts)
        except SlackApiError as exc:
            outcome = classify(exc)
            status = exc.response.status_code
            if outcome.transient and status >= 500 and status != 503 and message.method == "chat.postMessage":
                # a 500/502/504 can come after the message was stored: look before posting again
                # (a 503 is Slack, or its load balancer, turning the request away: nothing was stored)
                return Outcome(ok=False, transient=outcome.transient, uncertain=True)
            return outcome
        except (TimeoutError, URLError, ConnectionError, OSError) as exc:
            # the request may have reached Slack: look for it before sending again
            return Outcome(ok=False, transient=type(exc).__name__, uncertain=True)

    def upload(self, message: OutboxMessage, thread_ts: str | None) -> Outcome:
        """A file (an export) in Slack's three steps: getUploadURLExternal, the upload, completeUploadExternal.
        Only the last one shares the file: when its answer is lost, the outcome carries the file's id so
        that the next attempt looks it up (files.info) before uploading again; an export is posted once."""
        p = message.payload
        content = str(p.get("content", "")).encode()
        filename = str(p.get("filename") or "export.txt")
        try:
            step = self.client.files_getUploadURLExternal(filename=filename, length=len(content))
            put = httpx.post(str(step["upload_url"]), content=content, timeout=self.client.timeout)
            if put.status_code != 200:
                return Outcome(ok=False, transient=f"upload answered {put.status_code}")
        except SlackApiError as exc:
            return classify(exc)
        except (httpx.HTTPError, TimeoutError, URLError, OSError) as exc:  # nothing is shared yet
            return Outcome(ok=False, transient=type(exc).__name__)
        file_id = str(step["file_id"])
        try:
            self.client.files_completeUploadExternal(
                files=[{"id": file_id, "title": p.get("title") or filename}], channel_id=message.channel,
                initial_comment=p.get("initial_comment"), thread_ts=thread_ts)
            return Outcome(ok=True, ts=file_id)
        except SlackApiError as exc:
            outcome = classify(exc)
            if outcome.transient and exc.response.status_code >= 500 and exc.response.status_code != 503:
                return Outcome(ok=False, transient=outcome.transient, uncertain=True, ts=file_id)
            return outcome
        except (TimeoutError, URLError, OSError) as exc:
            return Outcome(ok=False, transient=type(exc).__name__, uncertain=True, ts=file_id)

    # -- incident channels (commands/incident_channels.py, commands/pins.py) ------------------------------
    def converse(self, message: OutboxMessage) -> Outcome:
        """A conversations.* call; what its timer needs of the answer goes in `answer` (a created channel's id
        in `ts`, as a file's is). Only a create is looked up before it is sent again: a repeat makes a second
        channel, where a repeated invite, archive or read is harmless."""
        create = message.method == "conversations.create"
        try:
            response = getattr(self.client, message.method.replace(".", "_"))(**message.payload)
        except SlackApiError as exc:
            if _error(exc) == ALREADY_DONE.get(message.method):
                return Outcome(ok=True, answer={"already": True})
            outcome = classify(exc)
            status = exc.response.status_code
            if create and outcome.transient and status >= 500 and status != 503:
                return Outcome(ok=False, transient=outcome.transient, uncertain=True)
            return outcome
        except (TimeoutError, URLError, ConnectionError, OSError) as exc:
            return Outcome(ok=False, transient=type(exc).__name__, uncertain=create)
        if create:
            channel = response.get("channel") or {}
            return Outcome(ok=True, ts=channel.get("id"), answer={"name": channel.get("name")})
        if message.method in ("conversations.history", "conversations.replies"):
            wanted = message.payload.get("latest") or message.payload.get("ts")
            found = next((m for m in response.get("messages") or [] if m.get("ts") == wanted), None)
            return Outcome(ok=True, answer={"message": found and {
                "ts": found.get("ts"), "user": found.get("user") or found.get("bot_id"),
                "thread_ts": found.get("thread_ts"), "text": str(found.get("text") or "")[:MAX_PINNED_TEXT]}})
        return Outcome(ok=True)

    def _find_channel(self, message: OutboxMessage) -> str | None:
        """The channel an earlier conversations.create of this row made, if Slack lists one of that name
        created by the bot (a name someone else took meanwhile is not ours)."""
        name = message.payload.get("name")
        cursor: str | None = None
        try:
            if self._bot_user is None:
                self._bot_user = str(self.client.auth_test().get("user_id"))
            for _ in range(LOOKUP_PAGES):
                response = self.client.conversations_list(types="public_channel", exclude_archived=True, limit=200,
                                                          cursor=cursor)
                for channel in response.get("channels") or []:
                    if channel.get("name") == name:
                        return channel.get("id") if channel.get("creator") == self._bot_user else None
                cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
                if not cursor:
                    return None
        except SlackApiError as exc:
            error = _error(exc)
            raise (LookupImpossible if error == "missing_scope" else LookupFailed)(error) from None
        except (TimeoutError, URLError, OSError) as exc:
            raise LookupFailed(type(exc).__name__) from None
        return None

    def _find_file(self, message: OutboxMessage) -> str | None:
        """The file an earlier attempt uploaded (its id kept in `ts`), if Slack shows it in the channel."""
        if not message.ts:
            return None
        try:
            file = self.client.files_info(file=message.ts).get("file") or {}
        except SlackApiError as exc:
            error = _error(exc)
            if error in ("file_not_found", "file_deleted"):
                return None
            raise (LookupImpossible if error in LOOKUP_IMPOSSIBLE else LookupFailed)(error) from None
        except (TimeoutError, URLError, OSError) as exc:
            raise LookupFailed(type(exc).__name__) from None
        shares = file.get("shares") or {}
        shared = {c for where in shares.values() for c in where} | set(file.get("channels") or [])
        return message.ts if message.channel in shared else None

    def find_sent(self, message: OutboxMessage, thread_ts: str | None) -> str | None:
        """Look for this row's metadata among the channel's (or thread's) messages.

        No `oldest` bound: rows carry the launch clock's time (manual in tests, accelerated in a
        rehearsal), not Slack's. The channel history is read newest first and the search stops at a
        message of ours with a smaller outbox id: a channel's rows are posted in id order, so ours
        would be newer than that one.
        """
        if message.method == "files.upload":
            return self._find_file(message)
        if message.method == "conversations.create":
            return self._find_channel(message)
        if message.method != "chat.postMessage":
            return None
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            try:
                if thread_ts:
                    response = self.client.conversations_replies(channel=message.channel, ts=thread_ts, cursor=cursor,
                                                                include_all_metadata=True, limit=200)
                else:
                    response = self.client.conversations_history(channel=message.channel, cursor=cursor,
                                                                include_all_metadata=True, limit=200)
            except SlackApiError as exc:
                error = _error(exc)
                raise (LookupImpossible if error in LOOKUP_IMPOSSIBLE else LookupFailed)(error) from None
            except (TimeoutError, URLError, OSError) as exc:
                raise LookupFailed(type(exc).__name__) from None
            for item in response.get("messages") or []:
                meta = item.get("metadata") or {}
                if meta.get("event_type") != METADATA_EVENT:
                    continue
                outbox_id = (meta.get("event_payload") or {}).get("outbox_id")
                if outbox_id == message.id:
                    return item.get("ts")
                if not thread_ts and isinstance(outbox_id, int) and outbox_id < message.id:
                    return None
            cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
            if not response.get("has_more") or not cursor:
                return None
        log.warning("gave up looking for an earlier send", extra={"outbox_id": message.id})
        return None


    def join(self, channel: str) -> str | None:
        """Join a public channel the bot posts to (channels:join), so that it can read its own posts there
        (the lookup after a lost answer). None when it is in, or Slack is only unreachable now; else
        Slack's reason (`method_not_supported_for_channel_type`, `channel_not_found`: a private channel,
        whose members must invite the bot; `missing_scope`: the app lacks channels:join)."""
        try:
            self.client.conversations_join(channel=channel)
            return None
        except SlackApiError as exc:
            error = _error(exc)
            return None if exc.response.status_code >= 500 or error == "ratelimited" else error
        except (TimeoutError, URLError, OSError):
            return None


def _error(exc: SlackApiError) -> str:
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    return str(data.get("error") or f"http_{exc.response.status_code}")


def classify(exc: SlackApiError) -> Outcome:
    status = exc.response.status_code
    error = _error(exc)
    if status == 429:
        retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after") or "1"
        if isinstance(retry_after, list):
            retry_after = retry_after[0]
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = 1.0
        return Outcome(ok=False, retry_after=max(seconds, 0.0))
    if status >= 500:
        return Outcome(ok=False, transient=error)
    if error in AUTH_ERRORS:
        return Outcome(ok=False, transient=error)
    if error in PERMANENT_ERRORS:
        return Outcome(ok=False, permanent=error)
    if error in ("ratelimited",):
        return Outcome(ok=False, retry_after=1.0)
    if error in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
        return Outcome(ok=False, transient=error)
    return Outcome(ok=False, permanent=error)
