"""What the outbox sends next: the least that shows the truth, urgent first (ARCHITECTURE rule 7).

A pass reads the routing columns of every pending row (no payloads) and the paces, and plans turns:

- A channel takes one post at a time, about one a second. Its next row is the first of its urgent
  rows, else of its routine ones, by id; a row that an urgent row of the same thread waits behind
  (an earlier reply, or the thread's parent) counts as urgent too, so a thread keeps its order and a
  reply never goes before its parent. While any of a channel's rows waits out a Retry-After or a
  backoff, the channel waits: Slack's answer was about the channel.
- Updates (chat.update) belong to the workspace: one at a time, about fifty a minute (Tier 3). Of a
  message's pending updates only the newest is sent, once the message is posted and no update of it
  is in flight; the older ones are superseded. Urgent messages first, then the longest waiting.
- While a channel is backed up (more than one post waiting), a routine reply takes the replies queued
  behind it in its thread along in one post (`join_replies`), as long as Slack's limits allow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.models import OutboxMessage

UPDATES = "chat.update"  # the pace key of the workspace's updates (ChannelPace row); no channel id has a dot
# Slack truncates a message's text at 40,000 characters and advises 4,000: replies sent together stay
# within that, so one long reply goes alone and a long run of them is split into several posts
MERGED_TEXT_LIMIT = 4000
REPLY_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Queued:
    """The columns a pass plans with."""

    id: int
    channel: str
    method: str
    ref: str | None
    thread_ref: str | None
    update_ref: str | None
    urgent: bool
    uncertain: bool
    attempts: int
    arms_timer_id: int | None
    merged_into: int | None
    next_attempt_at: datetime | None
    claimed_until: datetime | None


COLUMNS = tuple(getattr(OutboxMessage, name) for name in Queued.__dataclass_fields__)


@dataclass(frozen=True)
class Turn:
    """One row to claim now, with the pace key (a channel, or UPDATES) whose turn it takes."""

    row: Queued
    key: str
    urgent: bool
    backed_up: bool = False  # more posts wait in this channel: the thread's next replies may go along
    supersedes: tuple[int, ...] = ()  # older pending updates of the same message


def plan(rows: Sequence[Queued], paces: dict[str, datetime], now: datetime, wall: datetime) -> list[Turn]:
    """The turns that may be taken now, urgent first. `now` is the launch's clock (a row's next attempt),
    `wall` real time (paces and claims: Slack and the other replicas count on it)."""
    pending_refs = {r.ref for r in rows if r.ref}
    posts: dict[str, list[Queued]] = defaultdict(list)
    for r in rows:
        if r.method != "chat.update" and r.merged_into is None:
            posts[r.channel].append(r)
    turns = [turn for channel, queue in posts.items()
             if (turn := _channel_turn(queue, paces.get(channel), pending_refs, now, wall)) is not None]
    updates = [r for r in rows if r.method == "chat.update"]
    if updates and (turn := _update_turn(updates, paces.get(UPDATES), pending_refs, now, wall)) is not None:
        turns.append(turn)
    return sorted(turns, key=lambda t: (not t.urgent, t.row.id))


def next_free(rows: Sequence[Queued], paces: dict[str, datetime], wall: datetime) -> float | None:
    """Seconds until the soonest paced key that has rows waiting may send again (the loop sleeps until then)."""
    keys = {UPDATES if r.method == "chat.update" else r.channel for r in rows}
    waits = [(paces[k] - wall).total_seconds() for k in keys if k in paces and paces[k] > wall]
    return min(waits) if waits else None


def _channel_turn(queue: list[Queued], pace: datetime | None, pending_refs: set[str], now: datetime,
                  wall: datetime) -> Turn | None:
    if pace is not None and pace > wall:
        return None
    if any(_waits(r, now) or _in_flight(r, wall) for r in queue):
        return None
    urgent = _urgency(queue)
    head = min(queue, key=lambda r: (not urgent[r.id], r.id))
    if head.thread_ref in pending_refs:  # its parent, in another channel, is not posted yet
        return None
    return Turn(head, head.channel, urgent[head.id], backed_up=len(queue) > 1)


def _urgency(queue: Iterable[Queued]) -> dict[int, bool]:
    """Each row's urgency, counting the rows an urgent row of its thread waits behind (newest first:
    a thread is keyed by its parent's ref, which its replies carry as thread_ref)."""
    urgent_threads: set[str] = set()
    out: dict[int, bool] = {}
    for r in sorted(queue, key=lambda r: r.id, reverse=True):
        thread = r.thread_ref or r.ref
        out[r.id] = r.urgent or (thread is not None and thread in urgent_threads)
        if out[r.id] and thread is not None:
            urgent_threads.add(thread)
    return out


def _update_turn(updates: list[Queued], pace: datetime | None, pending_refs: set[str], now: datetime,
                 wall: datetime) -> Turn | None:
    if pace is not None and pace > wall:
        return None
    if any(_waits(r, now) or _in_flight(r, wall) for r in updates):
        return None
    messages: dict[str | None, list[Queued]] = defaultdict(list)
    for r in updates:
        messages[r.update_ref].append(r)
    choices = []
    for ref, group in messages.items():
        if ref in pending_refs:  # the message itself is not posted yet
            continue
        newest = max(group, key=lambda r: r.id)
        urgent = any(r.urgent for r in group)
        older = tuple(sorted(r.id for r in group if r.id != newest.id))
        choices.append((not urgent, min(r.id for r in group), Turn(newest, UPDATES, urgent, supersedes=older)))
    return min(choices, key=lambda c: c[:2])[2] if choices else None


def _waits(r: Queued, now: datetime) -> bool:
    return r.next_attempt_at is not None and r.next_attempt_at > now


def _in_flight(r: Queued, wall: datetime) -> bool:
    return r.claimed_until is not None and r.claimed_until > wall


def may_carry(row: OutboxMessage) -> bool:
    """A reply that may take the next replies of its thread along: routine, plain text, not a named
    message (nothing updates it later), arming no timer, not shown in the channel too. (Not one that
    may have landed already: the outbox asks that of the row before it claimed it.)"""
    return (row.method == "chat.postMessage" and row.thread_ref is not None and not row.urgent
            and row.ref is None and row.arms_timer_id is None and _plain(row.payload))


def may_ride(row: OutboxMessage) -> bool:
    """A reply that may go along in an earlier reply's post: as `may_carry`, and never tried yet."""
    return may_carry(row) and row.attempts == 0 and not row.uncertain and row.merged_into is None


def _plain(payload: dict[str, Any]) -> bool:
    return isinstance(payload.get("text"), str) and not payload.get("blocks") and not payload.get("reply_broadcast")


def riders(carrier: OutboxMessage, riding: Sequence[OutboxMessage], after: Sequence[OutboxMessage]) -> list[OutboxMessage]:
    """Of the thread's replies queued after `carrier` and those already riding with it (by id), the run
    that may go along too: it stops at the first that may not (order holds) or that would take the
    text over the limit."""
    size = len(join_replies(carrier, riding)["text"])
    out = []
    for row in after:
        size += len(REPLY_SEPARATOR) + len(row.payload["text"])
        if not may_ride(row) or size > MERGED_TEXT_LIMIT:
            break
        out.append(row)
    return out


def join_replies(carrier: OutboxMessage, merged: Sequence[OutboxMessage]) -> dict[str, Any]:
    """The payload of a post that carries several replies: every text, in order."""
    return {**carrier.payload, "text": REPLY_SEPARATOR.join([carrier.payload["text"], *(m.payload["text"] for m in merged)])}
