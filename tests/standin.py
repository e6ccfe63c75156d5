"""A Slack Web API stand-in on 127.0.0.1: records every call, answers like Slack, fails on demand.

    standin = SlackStandin().start()
    client = WebClient(token="xoxb-test", base_url=standin.api_url)
    standin.fail("chat.postMessage", status=429, retry_after=1, times=3)
    standin.fail("chat.postMessage", error="channel_not_found", channel="C0GONE")
    standin.fail("chat.postMessage", delay=3)          # answers after the client gave up
    standin.outage(seconds=60)                          # every method answers 503 until then
    standin.outage(); standin.end_outage()              # the same, switched by the test (manual clock)
    SlackStandin(enforce_pacing=True)                   # Slack's pace: 1 post/s a channel, 50 chat.update/min

It also serves `response_url` posts (/respond/…) and file uploads (/upload/…).

Every message and view is held to Slack's Block Kit rules (tests/blockkit.py): a payload Slack would
refuse is answered as Slack answers it (`invalid_blocks`, HTTP 200) and kept in `rejections`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests import blockkit
from tests.http_standin import LoopbackServer, Reply, Request

TIER3_PER_WINDOW, TIER3_WINDOW_S = 50, 60.0  # chat.update: 50 a minute per workspace


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    status: int = 200
    error: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    channel: str | None = None
    times: int | None = 1  # None: forever


class SlackStandin(LoopbackServer):
    name = "slack-standin"

    def __init__(self, *, enforce_pacing: bool = False) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.uploads: dict[str, bytes] = {}
        self.shared_files: dict[str, str] = {}  # file id -> the channel it was shared in
        self.faults: list[Fault] = []
        self.rejections: list[Call] = []  # payloads refused for breaking Slack's Block Kit rules
        self.enforce_pacing = enforce_pacing
        self._outage_until = 0.0
        self._last_post: dict[str, float] = {}
        self._updates_at: list[float] = []  # when each recent chat.update landed (Tier 3 window)
        self.pace_clock = time.monotonic  # what Slack's pace counts on; a test may give it a manual clock
        self._lock = threading.RLock()
        self._ts = 1_700_000_000.0
        self.socket_url: str | None = None  # apps.connections.open answers it (tests/socket_standin.py sets it)
        self.channels: dict[str, dict[str, Any]] = {}  # conversations.create's, by id (incident channels)

    def respond(self, request: Request) -> Reply:
        status, headers, body = self.handle(request.path, request.header("Content-Type"), request.body)
        return Reply(status, body, headers, content_type="application/json; charset=utf-8")

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    # -- faults ----------------------------------------------------------
    def fail(self, method: str, *, status: int = 200, error: str | None = None, retry_after: float | None = None,
             delay: float = 0.0, channel: str | None = None, times: int | None = 1) -> None:
        if retry_after is not None and status == 200:
            status = 429
        with self._lock:
            self.faults.append(Fault(method, status, error, retry_after, delay, channel, times))

    def outage(self, seconds: float | None = None) -> None:
        """Every method answers 503 for `seconds` of real time, or (None) until end_outage()."""
        self._outage_until = float("inf") if seconds is None else time.monotonic() + seconds

    def end_outage(self) -> None:
        self._outage_until = 0.0

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
        self._outage_until = 0.0

    # -- what happened ---------------------------------------------------
    def calls_to(self, method: str, **match: Any) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.status == 200 and c.response.get("ok")
                    and all(c.args.get(k) == v for k, v in match.items())]

    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages that landed (chat.postMessage answered ok), in order."""
        return [c.args for c in self.calls_to("chat.postMessage") if channel is None or c.args.get("channel") == channel]

    def channel_posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Posts a reader sees in the channel itself: top-level messages and thread replies sent with
        reply_broadcast ("also send to channel")."""
        return [p for p in self.posts(channel) if in_channel(p)]

    def thread_posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Posts in threads (a broadcast reply is in its thread and in the channel)."""
        return [p for p in self.posts(channel) if p.get("thread_ts")]

    def rejected(self, error: str | None = None) -> list[Call]:
        """The calls refused for their blocks (or text), e.g. `rejected("invalid_blocks")`."""
        with self._lock:
            return [c for c in self.rejections if error is None or c.response.get("error") == error]

    def attempts(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.messages.clear()
            self.faults.clear()
            self.rejections.clear()
            self._last_post.clear()
            self._updates_at.clear()
            self.channels.clear()
        self._outage_until = 0.0

    # -- answering -------------------------------------------------------
    def handle(self, path: str, content_type: str, raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        args = _parse(content_type, raw)
        if path.startswith("/respond/"):
            refused = self._refused("response_url", args)
            if refused is not None:
                return 200, {}, refused
            self._record(Call("response_url", args, time.time(), 200, {"ok": True}))
            return 200, {}, {"ok": True}
        if path.startswith("/upload/"):
            self.uploads[path.rsplit("/", 1)[-1]] = raw
            self._record(Call("upload", {"file_id": path.rsplit("/", 1)[-1], "bytes": len(raw)}, time.time(), 200,
                              {"ok": True}))
            return 200, {}, {"ok": True}
        method = path.removeprefix("/api/").split("?")[0]
        if time.monotonic() < self._outage_until:
            self._record(Call(method, args, time.time(), 503, {}))
            return 503, {}, {"ok": False, "error": "service_unavailable"}
        fault = self._take_fault(method, args)
        if fault is not None:
            if fault.delay:
                # the request landed; the answer comes too late for the client
                response = self._refused(method, args)
                if response is None:
                    response = self._answer(method, args)
                    self._record(Call(method, args, time.time(), 200, response))
                time.sleep(fault.delay)
                return 200, {}, response
            if fault.status == 429:
                self._record(Call(method, args, time.time(), 429, {}))
                return 429, {"Retry-After": str(int(fault.retry_after or 1))}, {"ok": False, "error": "ratelimited"}
            if fault.status >= 500:
                self._record(Call(method, args, time.time(), fault.status, {}))
                return fault.status, {}, {"ok": False, "error": "internal_error"}
            response = {"ok": False, "error": fault.error or "unknown_error"}
            self._record(Call(method, args, time.time(), 200, response))
            return 200, {}, response
        refused = self._refused(method, args)
        if refused is not None:
            return 200, {}, refused
        if method == "chat.postMessage" and self.enforce_pacing:
            channel = str(args.get("channel"))
            with self._lock:
                last = self._last_post.get(channel)
                if last is not None and self.pace_clock() - last < 0.9:
                    self._record(Call(method, args, time.time(), 429, {}))
                    return 429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}
                self._last_post[channel] = self.pace_clock()
        if method == "chat.update" and self.enforce_pacing and (wait := self._over_tier3()) is not None:
            self._record(Call(method, args, time.time(), 429, {}))
            return 429, {"Retry-After": str(wait)}, {"ok": False, "error": "ratelimited"}
        response = self._answer(method, args)
        self._record(Call(method, args, time.time(), 200, response))
        return 200, {}, response

    def _refused(self, method: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """Slack's answer to a payload that breaks its Block Kit rules, recorded; None when it passes."""
        verdict = blockkit.check(method, args)
        if verdict is None:
            return None
        call = Call(method, args, time.time(), 200, verdict.response())
        with self._lock:
            self.calls.append(call)
            self.rejections.append(call)
        return call.response

    def _file_info(self, file_id: str) -> dict[str, Any]:
        """files.info of an uploaded file: where it is shared (none until completeUploadExternal)."""
        with self._lock:
            channel = self.shared_files.get(file_id)
        if file_id not in self.uploads:
            return {"ok": False, "error": "file_not_found"}
        shares = {"public": {channel: [{"ts": self._next_ts()}]}} if channel else {}
        return {"ok": True, "file": {"id": file_id, "shares": shares, "channels": [channel] if channel else []}}

    def _over_tier3(self) -> int | None:
        """chat.update is Tier 3: about 50 a minute for the workspace. Over that (a rolling minute),
        the seconds until the oldest leaves the window; else None, and this one counts."""
        with self._lock:
            now = self.pace_clock()
            self._updates_at = [t for t in self._updates_at if now - t < TIER3_WINDOW_S]
            if len(self._updates_at) >= TIER3_PER_WINDOW:
                return max(1, math.ceil(TIER3_WINDOW_S - (now - self._updates_at[0])))
            self._updates_at.append(now)
            return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _take_fault(self, method: str, args: dict[str, Any]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method != method or (fault.channel and args.get("channel") != fault.channel):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 0.0001
            return f"{self._ts:.6f}"

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if method == "auth.test":
            return {"ok": True, "url": "https://standin.slack/", "team": "Standin", "user": "warroom",
                    "team_id": "T0STANDIN", "user_id": "U0BOT", "bot_id": "B0BOT"}
        if method == "apps.connections.open" and self.socket_url:
            return {"ok": True, "url": self.socket_url}
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {"ts": ts, "text": args.get("text"), "blocks": args.get("blocks"),
                       "thread_ts": args.get("thread_ts"), "metadata": args.get("metadata")}
            if args.get("thread_ts") and _flag(args.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"  # Slack: in the thread and in the channel's history
            with self._lock:
                self.messages.setdefault(channel, []).append(message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            with self._lock:
                for message in self.messages.get(channel, []):
                    if message["ts"] == args.get("ts"):
                        message.update(text=args.get("text"), blocks=args.get("blocks"))
                        return {"ok": True, "channel": channel, "ts": message["ts"]}
            return {"ok": False, "error": "message_not_found"}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method in ("conversations.history", "conversations.replies"):
            oldest = float(args.get("oldest") or 0)
            with self._lock:
                found = [m for m in self.messages.get(channel, []) if float(m["ts"]) >= oldest]
            if method == "conversations.replies":
                found = self._thread_of(channel, str(args.get("ts")), found)
                return {"ok": True, "messages": found, "has_more": False}  # oldest first, the parent first
            # history: the channel's own messages; of thread replies only the broadcast ones
            found = [m for m in found if not m.get("thread_ts") or m.get("subtype") == "thread_broadcast"]
            if args.get("latest"):  # up to `latest`, which counts only when `inclusive`
                latest, inclusive = float(args["latest"]), _flag(args.get("inclusive"))
                found = [m for m in found if float(m["ts"]) < latest or (inclusive and float(m["ts"]) == latest)]
            found = list(reversed(found))[: int(args.get("limit") or 100)]
            return {"ok": True, "messages": found, "has_more": False}
        conversation = self._conversation(method, args)
        if conversation is not None:
            return conversation
        if method == "files.getUploadURLExternal":
            file_id = f"F{int(float(self._next_ts()) * 10000) % 10**9:09d}"
            return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = args.get("files")
            if isinstance(files, str):
                files = json.loads(files)
            with self._lock:  # shared in the channel from now on (files.info says so)
                self.shared_files.update({str(f.get("id")): str(args.get("channel_id")) for f in files or []})
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title")} for f in files or []]}
        if method == "files.info":
            return self._file_info(str(args.get("file")))
        return {"ok": True}


    # -- incident channels, the declare shortcut, pins ----------------------------------------------------
    # conversations.create / invite / archive / list as Slack answers them (name_taken when a channel has
    # the name; already_in_channel; already_archived), chat.getPermalink, views.open / views.update with
    # the view's id, and messages people wrote (add_message) for conversations.history / replies to read.
    # `fail("conversations.create", error="restricted_action")` is a workspace where apps may not create channels.

    def add_channel(self, name: str, *, creator: str = "U0SOMEONE") -> str:
        """A channel someone else made (its name is then taken)."""
        return self._create_channel(name, creator)["id"]

    def channel_named(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return next((dict(c) for c in self.channels.values() if c["name"] == name), None)

    def add_message(self, channel: str, text: str, *, user: str = "U0ENG", thread_ts: str | None = None) -> str:
        """A message a person wrote (in a thread when `thread_ts`); its ts."""
        ts = self._next_ts()
        with self._lock:
            self.messages.setdefault(channel, []).append(
                {"type": "message", "ts": ts, "user": user, "text": text, "thread_ts": thread_ts, "blocks": None,
                 "metadata": None})
        return ts

    def _thread_of(self, channel: str, ts: str, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """conversations.replies: `ts` is a thread's parent or a message in it; a lone message is its own thread."""
        named = next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)
        parent = (named or {}).get("thread_ts") or ts
        return [m for m in found if m["ts"] == parent or m.get("thread_ts") == parent]

    def _create_channel(self, name: str, creator: str) -> dict[str, Any]:
        with self._lock:
            channel = {"id": f"C0INC{len(self.channels) + 1:05d}", "name": name, "creator": creator,
                       "is_channel": True, "is_private": False, "is_archived": False, "members": [creator]}
            self.channels[channel["id"]] = channel
            return channel

    def _conversation(self, method: str, args: dict[str, Any]) -> dict[str, Any] | None:
        channel = self.channels.get(str(args.get("channel", "")))
        if method == "conversations.create":
            name = str(args.get("name") or "")
            if not name:
                return {"ok": False, "error": "invalid_name_required"}
            if len(name) > 80:
                return {"ok": False, "error": "invalid_name_maxlength"}
            if not re.fullmatch(r"[a-z0-9_-]+", name):
                return {"ok": False, "error": "invalid_name_specials"}
            with self._lock:
                if self.channel_named(name) is not None:
                    return {"ok": False, "error": "name_taken"}
                made = self._create_channel(name, "U0BOT")
            return {"ok": True, "channel": {k: v for k, v in made.items() if k != "members"}}
        if method in ("conversations.invite", "conversations.archive") and channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if method == "conversations.invite":
            assert channel is not None
            users = [u for u in str(args.get("users") or "").split(",") if u]
            if not users:
                return {"ok": False, "error": "no_user"}
            if "U0BOT" in users:
                return {"ok": False, "error": "cant_invite_self"}
            if channel["is_archived"]:
                return {"ok": False, "error": "is_archived"}
            with self._lock:
                if any(u in channel["members"] for u in users):
                    return {"ok": False, "error": "already_in_channel"}
                channel["members"].extend(users)
            return {"ok": True, "channel": {"id": channel["id"], "name": channel["name"]}}
        if method == "conversations.archive":
            assert channel is not None
            if channel["is_archived"]:
                return {"ok": False, "error": "already_archived"}
            channel["is_archived"] = True
            return {"ok": True}
        if method == "conversations.list":
            with self._lock:
                listed = [{k: v for k, v in c.items() if k != "members"} for c in self.channels.values()
                          if not (c["is_archived"] and _flag(args.get("exclude_archived")))]
            return {"ok": True, "channels": listed, "response_metadata": {"next_cursor": ""}}
        if method == "chat.getPermalink":
            ts = str(args.get("message_ts") or "")
            return {"ok": True, "channel": args.get("channel"),
                    "permalink": f"https://standin.slack.com/archives/{args.get('channel')}/p{ts.replace('.', '')}"}
        if method in ("views.open", "views.update"):
            view = args.get("view")
            view = json.loads(view) if isinstance(view, str) else (view or {})
            return {"ok": True, "view": {**view, "id": args.get("view_id") or "V0STANDIN1", "hash": "h-standin"}}
        return None


def _flag(value: Any) -> bool:
    """A boolean argument as Slack reads it, from JSON (true) or a form ("true", "1")."""
    return value is True or str(value).lower() in ("true", "1")


def in_channel(post: dict[str, Any]) -> bool:
    """Whether a chat.postMessage shows in the channel itself (not only in a thread)."""
    return not post.get("thread_ts") or _flag(post.get("reply_broadcast"))


def _parse(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    text = raw.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            value = json.loads(text)
            return value if isinstance(value, dict) else {"_": value}
        except json.JSONDecodeError:
            return {"_raw": text}
    if "x-www-form-urlencoded" in content_type:
        parsed = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
        for key in ("blocks", "metadata", "files", "view"):
            if isinstance(parsed.get(key), str):
                with contextlib.suppress(json.JSONDecodeError):
                    parsed[key] = json.loads(parsed[key])
        return parsed
    return {"_bytes": len(raw)}
