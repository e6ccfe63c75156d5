"""What the outbox sends next: the least that shows the truth, urgent first (ARCHITECTURE rule 7).

A pass reads the paces, then the routing columns (no payloads) of the pending rows whose channel (or the
workspace's updates) may send now: a channel resting after its last post is skipped, so under a backlog
of thousands in the war room a pass reads only what it could send. It plans turns:

- Rows go by rank (`rank`): a rollback's confirmation and broadcast first, whatever is queued (the
  commander must see it within seconds, however many sev1s a flood let through); then the other
  urgent rows (new sev1/sev2 notifications, escalations); then routine ones.
- A channel takes one post at a time, about one a second. Its next row is the first of its best
  rank, by id; a row that a better-ranked row of the same thread waits behind (an earlier reply, or
  the thread's parent) takes that rank too, so a thread keeps its order and a reply never goes
  before its parent. While any of a channel's rows waits out a Retry-After or a
  backoff, the channel waits: Slack's answer was about the channel.
- Updates (chat.update) belong to the workspace: one at a time, about fifty a minute (Tier 3). Of a
  message's pending updates only the newest is sent, once the message is posted and no update of it
  is in flight; the older ones are superseded. The best rank first, then the longest waiting.
- While a channel is backed up (more than one post waiting), a routine reply takes the replies queued
  behind it in its thread along in one post (`join_replies`), as long as Slack's limits allow.

Then it claims the turns: each one's pace key (its ChannelPace row, held while the send is in flight,
so replicas take turns) and its row, in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from db.models import ChannelPace, OutboxMessage
from db.session import reading, transaction

UPDATES = "chat.update"  # the pace key of the workspace's updates (ChannelPace row); no channel id has a dot
# Slack truncates a message's text at 40,000 characters and advises 4,000: replies sent together stay
# within that, so one long reply goes alone and a long run of them is split into several posts
MERGED_TEXT_LIMIT = 4000
REPLY_SEPARATOR = "\n\n"
LOOKED_UP = ("chat.postMessage", "conversations.create")  # a send in doubt is looked for before it is resent
# ranks, best first: a rollback's urgent messages (its confirmation, the confirmation's updates, the
# broadcast: kinds `rollback.…`), the other urgent ones, routine ones
ROLLBACK, URGENT, ROUTINE = 0, 1, 2
FIRST_KIND = "rollback."


def rank(kind: str, urgent: bool) -> int:
    """Where a row goes among a channel's (or the workspace's updates') rows."""
    if not urgent:
        return ROUTINE
    return ROLLBACK if kind.startswith(FIRST_KIND) else URGENT


@dataclass(frozen=True)
class Queued:
    """The columns a pass plans with."""

    id: int
    kind: str
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
    rank: int
    backed_up: bool = False  # more posts wait in this channel: the thread's next replies may go along
    supersedes: tuple[int, ...] = ()  # older pending updates of the same message


def plan(rows: Sequence[Queued], paces: dict[str, datetime], now: datetime, wall: datetime,
         pending_refs: set[str]) -> list[Turn]:
    """The turns that may be taken now, best rank first. `now` is the launch's clock (a row's next attempt),
    `wall` real time (paces and claims: Slack and the other replicas count on it). `pending_refs`: the
    named messages not posted yet (a reply waits for its parent, an update for its message)."""
    posts: dict[str, list[Queued]] = defaultdict(list)
    for r in rows:
        if r.method != "chat.update" and r.merged_into is None:
            posts[r.channel].append(r)
    turns = [turn for channel, queue in posts.items()
             if (turn := _channel_turn(queue, paces.get(channel), pending_refs, now, wall)) is not None]
    updates = [r for r in rows if r.method == "chat.update"]
    if updates and (turn := _update_turn(updates, paces.get(UPDATES), pending_refs, now, wall)) is not None:
        turns.append(turn)
    return sorted(turns, key=lambda t: (t.rank, t.row.id))


def next_free(paces: dict[str, datetime], wall: datetime) -> float | None:
    """Seconds until the soonest resting key may send again (the loop sleeps until then, or a commit)."""
    waits = [(at - wall).total_seconds() for at in paces.values() if at > wall]
    return min(waits) if waits else None


def _on_keys(keys: Iterable[str]) -> Any:
    """The rows whose pace key (their channel, or UPDATES for an update) is one of `keys`."""
    keys = set(keys)
    is_update = OutboxMessage.method == "chat.update"
    posts = and_(~is_update, OutboxMessage.channel.in_(keys - {UPDATES}))  # type: ignore[attr-defined]
    return or_(posts, is_update) if UPDATES in keys else posts


def _channel_turn(queue: list[Queued], pace: datetime | None, pending_refs: set[str], now: datetime,
                  wall: datetime) -> Turn | None:
    if pace is not None and pace > wall:
        return None
    if any(_waits(r, now) or _in_flight(r, wall) for r in queue):
        return None
    ranks = _ranks(queue)
    head = min(queue, key=lambda r: (ranks[r.id], r.id))
    if head.thread_ref in pending_refs:  # its parent, in another channel, is not posted yet
        return None
    return Turn(head, head.channel, ranks[head.id], backed_up=len(queue) > 1)


def _ranks(queue: Iterable[Queued]) -> dict[int, int]:
    """Each row's rank, counting the better-ranked rows of its thread that wait behind it (newest first:
    a thread is keyed by its parent's ref, which its replies carry as thread_ref)."""
    best: dict[str, int] = {}  # thread -> the best rank of its rows seen so far (the later ones)
    out: dict[int, int] = {}
    for r in sorted(queue, key=lambda r: r.id, reverse=True):
        thread = r.thread_ref or r.ref
        out[r.id] = min(rank(r.kind, r.urgent), best.get(thread, ROUTINE) if thread is not None else ROUTINE)
        if thread is not None:
            best[thread] = out[r.id]
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
        best = min(rank(r.kind, r.urgent) for r in group)
        older = tuple(sorted(r.id for r in group if r.id != newest.id))
        choices.append((best, min(r.id for r in group), Turn(newest, UPDATES, best, supersedes=older)))
    return min(choices, key=lambda c: c[:2])[2] if choices else None


def _waits(r: Queued, now: datetime) -> bool:
    return r.next_attempt_at is not None and r.next_attempt_at > now


def _in_flight(r: Queued | OutboxMessage, wall: datetime) -> bool:
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


# -- taking turns -------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """A row an outbox may send now: whether an earlier attempt may have landed, and whose turn it took."""

    id: int
    maybe_sent: bool
    key: str


def claim_turns(engine: Engine, now: datetime, wall: datetime, room: int, worker: str,
                claim_for: timedelta) -> tuple[list[Claim], float | None]:
    """Plan from the paces and the routing columns of the pending rows that may go now, then claim the
    first `room` turns. Also: seconds until the soonest resting key may send again."""
    pending = OutboxMessage.status == "pending"
    with reading(engine) as session:
        paces = {p.channel: p.not_before for p in session.exec(select(ChannelPace)).all()}
        resting = [key for key, at in paces.items() if at > wall]
        rows = [Queued(*r) for r in session.exec(select(*COLUMNS).where(pending, ~_on_keys(resting)))]
        waits_for = {r.thread_ref for r in rows if r.thread_ref} | {r.update_ref for r in rows if r.update_ref}
        pending_refs = set(session.exec(select(OutboxMessage.ref).where(
            pending, OutboxMessage.ref.in_(waits_for)))) if waits_for else set()  # type: ignore[union-attr]
    turns = plan(rows, paces, now, wall, pending_refs)[:room]
    claimed = []
    if turns:
        with transaction(engine) as session:
            for turn in sorted(turns, key=lambda t: t.key):  # pace rows locked in one order by every replica
                claim = _take(session, turn, wall, worker, claim_for)
                if claim is not None:
                    claimed.append(claim)
    return claimed, next_free(paces, wall)


def _take(session: Session, turn: Turn, wall: datetime, worker: str, claim_for: timedelta) -> Claim | None:
    """Claim the turn's pace key, then its row; then what goes along with it, or gives way to it."""
    if not take_turn(session, turn.key, wall, wall + claim_for):
        return None
    row = turn.row
    # A claimed post counts as maybe-sent until Slack answers: if this process dies mid-send,
    # whoever claims the row next looks for it by its metadata before posting again.
    # `uncertain == seen` makes the claim fail if another attempt finished since we looked.
    won = session.exec(update(OutboxMessage).where(  # type: ignore[call-overload]
        OutboxMessage.id == row.id, OutboxMessage.status == "pending",
        OutboxMessage.uncertain == row.uncertain,  # type: ignore[arg-type]
        (OutboxMessage.claimed_until.is_(None)) | (OutboxMessage.claimed_until <= wall),  # type: ignore[union-attr]
    ).values(claimed_until=wall + claim_for, claimed_by=worker,
             uncertain=row.uncertain or row.method in LOOKED_UP)).rowcount
    if won != 1:
        end_turn(session, turn.key, wall)
        return None
    if turn.supersedes:
        session.exec(update(OutboxMessage).where(  # type: ignore[call-overload]
            OutboxMessage.id.in_(turn.supersedes), OutboxMessage.status == "pending",  # type: ignore[union-attr]
            (OutboxMessage.claimed_until.is_(None)) | (OutboxMessage.claimed_until <= wall),  # type: ignore[union-attr]
        ).values(status="superseded", merged_into=row.id))
    elif turn.backed_up and row.thread_ref is not None and not row.uncertain:  # a post in doubt is resent as it was
        _take_riders(session, row.id, wall)
    return Claim(row.id, row.uncertain, turn.key)


def take_turn(session: Session, key: str, wall: datetime, hold: datetime) -> bool:
    """The key's turn (a channel, or the workspace's updates) when its pace allows one now. Its row says
    `hold` (the claim's end) while the send is in flight, so no other replica sends on that key meanwhile."""
    won = session.exec(update(ChannelPace).where(  # type: ignore[call-overload]
        ChannelPace.channel == key, ChannelPace.not_before <= wall).values(not_before=hold)).rowcount  # type: ignore[arg-type]
    if won == 1:
        return True
    if session.exec(select(ChannelPace.channel).where(ChannelPace.channel == key)).first() is not None:
        return False
    try:  # the key's first send ever; a replica adding the same row at once wins instead
        with session.begin_nested():
            session.add(ChannelPace(channel=key, not_before=hold))
        return True
    except IntegrityError:
        return False


def end_turn(session: Session, key: str, not_before: datetime) -> None:
    """The key's send is over: its next turn may come at `not_before`."""
    session.exec(update(ChannelPace).where(ChannelPace.channel == key).values(not_before=not_before))  # type: ignore[call-overload]


def _take_riders(session: Session, carrier_id: int, wall: datetime) -> None:
    """The channel is backed up: the replies queued behind this one in its thread go in its post."""
    carrier = session.get(OutboxMessage, carrier_id)
    assert carrier is not None
    if not may_carry(carrier):
        return
    riding = session.exec(select(OutboxMessage).where(
        OutboxMessage.merged_into == carrier_id, OutboxMessage.status == "pending").order_by(OutboxMessage.id)).all()  # type: ignore[arg-type]
    last = max([carrier_id, *(r.id for r in riding if r.id is not None)])
    after = session.exec(select(OutboxMessage).where(
        OutboxMessage.status == "pending", OutboxMessage.channel == carrier.channel,
        OutboxMessage.thread_ref == carrier.thread_ref, OutboxMessage.id > last,  # type: ignore[operator]
        OutboxMessage.method == "chat.postMessage").order_by(OutboxMessage.id)).all()  # type: ignore[arg-type]
    more = [r.id for r in riders(carrier, riding, [r for r in after if not _in_flight(r, wall)])]  # type: ignore[arg-type]
    if more:
        session.exec(update(OutboxMessage).where(  # type: ignore[call-overload]
            OutboxMessage.id.in_(more), OutboxMessage.status == "pending",  # type: ignore[union-attr]
            OutboxMessage.merged_into.is_(None)).values(merged_into=carrier_id))  # type: ignore[union-attr]
