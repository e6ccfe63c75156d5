"""Slack Web API calls for the outbox, through slack_sdk's WebClient at SLACK_API_URL."""

from __future__ import annotations

import logging
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.outbox import METADATA_EVENT, PERMANENT_ERRORS, Outcome
from db.models import OutboxMessage

log = logging.getLogger("warroom.transport")


def make_client(token: str | None, api_url: str, *, timeout: int = 10) -> WebClient:
    """A WebClient that retries a 429 (after Retry-After) and a 5xx once before the outbox backs off."""
    return WebClient(
        token=token, base_url=api_url, timeout=timeout,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1), ServerErrorRetryHandler(max_retry_count=1)],
    )


class SlackTransport:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def send(self, message: OutboxMessage, thread_ts: str | None, update_ts: str | None) -> Outcome:
        if message.method == "files.upload":
            return self.upload(message, thread_ts)
        args: dict[str, Any] = {"channel": message.channel, **message.payload}
        if message.method == "chat.postMessage":
            args["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"outbox_id": message.id}}
            if thread_ts:
                args["thread_ts"] = thread_ts
        elif message.method == "chat.update":
            args["ts"] = update_ts
        try:
            response = self.client.api_call(message.method, json=args)
            return Outcome(ok=True, ts=response.get("ts") or update_ts)
        except SlackApiError as exc:
            return classify(exc)
        except (TimeoutError, URLError, ConnectionError, OSError) as exc:
            # the request may have reached Slack: look for it before sending again
            return Outcome(ok=False, transient=type(exc).__name__, uncertain=True)

    def upload(self, message: OutboxMessage, thread_ts: str | None) -> Outcome:
        """A file (an export) through the external upload flow: getUploadURLExternal, the upload,
        completeUploadExternal (slack_sdk's files_upload_v2)."""
        p = message.payload
        try:
            self.client.files_upload_v2(
                channel=message.channel, content=str(p.get("content", "")), filename=p.get("filename"),
                title=p.get("title"), initial_comment=p.get("initial_comment"), thread_ts=thread_ts,
                request_file_info=False,
            )
            return Outcome(ok=True)
        except SlackApiError as exc:
            return classify(exc)
        except SlackRequestError as exc:  # the upload step itself answered non-200
            return Outcome(ok=False, transient=str(exc)[:80])
        except (TimeoutError, URLError, ConnectionError, OSError) as exc:
            return Outcome(ok=False, transient=type(exc).__name__)

    def find_sent(self, message: OutboxMessage, thread_ts: str | None) -> str | None:
        if message.method != "chat.postMessage":
            return None
        oldest = f"{message.created_at.timestamp() - 5:.6f}" if message.created_at else "0"
        try:
            if thread_ts:
                response = self.client.conversations_replies(channel=message.channel, ts=thread_ts, oldest=oldest,
                                                            include_all_metadata=True, limit=200)
            else:
                response = self.client.conversations_history(channel=message.channel, oldest=oldest,
                                                            include_all_metadata=True, limit=200)
        except (SlackApiError, OSError, URLError) as exc:
            log.warning("could not check for an earlier send", extra={"outbox_id": message.id, "error": str(exc)[:200]})
            return None
        for item in response.get("messages", []):
            meta = item.get("metadata") or {}
            if meta.get("event_type") == METADATA_EVENT and meta.get("event_payload", {}).get("outbox_id") == message.id:
                return item.get("ts")
        return None


def classify(exc: SlackApiError) -> Outcome:
    status = exc.response.status_code
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    error = str(data.get("error") or f"http_{status}")
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
    if error in PERMANENT_ERRORS:
        return Outcome(ok=False, permanent=error)
    if error in ("ratelimited",):
        return Outcome(ok=False, retry_after=1.0)
    if error in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
        return Outcome(ok=False, transient=error)
    return Outcome(ok=False, permanent=error)
