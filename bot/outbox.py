"""The one way out: deliver outbox rows to Slack, exactly once, at Slack's pace.

What goes next is bot/outbox_order.py's plan: urgent first, in order within a thread and a
message, a message's superseded updates dropped for its newest, a backed-up thread's replies
sent together. A row is claimed (`UPDATE … WHERE claimed_until < now`) before it is sent, and
so is its pace key's turn (a channel's, or the workspace's updates'), so two replicas never send
the same row nor two posts to one channel at once; it is marked sent only when Slack said ok.
429s wait for Retry-After; 5xx, timeouts and connection errors back off (counting only those,
in a row) and retry until Slack answers; permanent errors (channel_not_found, not_in_channel,
…) stop, are kept for export and are reported in the war room (or the log when the war room
itself is the broken channel). A send whose outcome is unknown (a timeout after the request
left) is looked up by its metadata before it is sent again, so a retry never posts twice.
A file (an export) is built when it is sent (`build_file`), after that look-up: its row keeps what
to build, not the file.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.clock import Clock
from bot.outbox_order import UPDATES, Claim, claim_turns, end_turn, join_replies
from db.models import MessageRef, OutboxMessage, Timer
from db.session import reading, transaction

log = logging.getLogger("warroom.outbox")

PACE_S = 1.0  # chat.postMessage: about one message a second per channel (Slack counts real time)
UPDATE_PACE_S = 1.2  # chat.update: Tier 3, about fifty a minute for the workspace
CLAIM_FOR = timedelta(seconds=60)  # real time; an attempt gives up sending once its claim is this old
FIRST_BACKOFF_S = 0.5  # after one transient failure; doubling with each one in a row
MAX_BACKOFF_S = 30.0
MIN_PASS_S = 0.1  # a pass reads and plans the rows that may go now: under a burst, ten a second, not one per commit
IDLE_WAIT_S = 0.25
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_blocks", "invalid_blocks_format",
    "msg_too_long", "msg_blocks_too_long", "no_text", "cant_update_message", "message_not_found",
    "edit_window_closed", "restricted_action", "user_not_in_channel", "invalid_arguments", "too_many_attachments",
})
# The token, not the message, is wrong: every message would fail. Keep them all and retry slowly;
# /healthz turns 503 once they are 5 minutes old, and the log says why.
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "missing_scope"})
AUTH_BACKOFF_S = 60.0
METADATA_EVENT = "warroom_outbox"
# Incident channels (commands/incident_channels.py, commands/pins.py): a row of these methods arms a timer
# that gets Slack's answer (`answer`) and carries on the set-up, or says what failed, itself.
ANSWERED_METHODS = frozenset({"conversations.create", "conversations.invite", "conversations.archive",
                              "conversations.history", "conversations.replies"})


class LookupFailed(Exception):
    """Slack could not say whether an earlier attempt landed: do not send again yet."""


class LookupImpossible(LookupFailed):
    """Slack will never say: the bot cannot read the channel (one it posts to with chat:write.public
    without being a member, or a private one it was not invited to)."""


def wall_clock() -> datetime:
    """Claims are between processes, so they run on real time whatever clock the launch runs on."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What one send attempt came to."""

    ok: bool
    ts: str | None = None
    retry_after: float | None = None  # 429: wait this long
    permanent: str | None = None  # Slack's error code: do not retry
    transient: str | None = None  # 5xx, connection error: back off and retry
    uncertain: bool = False  # the request may have landed: look before resending
    unconfirmed: str | None = None  # it may have landed and Slack will not say (LookupImpossible): stop
    answer: dict[str, Any] | None = None  # for ANSWERED_METHODS: what of Slack's answer the armed timer reads


class Transport(Protocol):
    def send(self, message: OutboxMessage, thread_ts: str | None, update_ts: str | None) -> Outcome: ...

    def find_sent(self, message: OutboxMessage, thread_ts: str | None) -> str | None:
        """The ts of a message this row already posted, if Slack has one (by its metadata); for a file, its id
        if an earlier attempt shared it (the id the lost answer's outcome kept in `ts`).

        Raises LookupFailed when Slack could not be asked; the row is then retried later.
        Raises LookupImpossible when it never can be (the bot cannot read the channel).
        """
        ...


class Outbox:
    def __init__(self, engine: Engine, transport: Transport, clock: Clock, *, workers: int = 8,
                 worker_id: str | None = None, pace_s: float = PACE_S, update_pace_s: float | None = None,
                 claim_for: timedelta = CLAIM_FOR, wall: Callable[[], datetime] = wall_clock,
                 build_file: Callable[[OutboxMessage], str] | None = None) -> None:
        self.engine = engine
        self.build_file = build_file  # a file row's content, built when it is sent (bot/exporting.py)
        self.pace_s = pace_s
        # a bot that paces its posts paces its updates; one that does not (the shell, tests) neither
        self.update_pace_s = (UPDATE_PACE_S if pace_s > 0 else 0.0) if update_pace_s is None else update_pace_s
        self.claim_for = claim_for
        self.wall = wall  # real time (claims, paces); a test may give it a manual clock
        self.transport = transport
        self.clock = clock
        self.worker_id = worker_id or f"outbox-{uuid.uuid4().hex[:8]}"
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="outbox")
        self._in_flight = 0
        self._flight_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_failure: Callable[[OutboxMessage], None] = self._report_failure
        self._slack_was_down = threading.Event()  # a 5xx/timeout since the last success
        self.on_armed: Callable[[], None] = lambda: None  # a posted ping armed its timer (wakes the scheduler)
        self.on_sent: Callable[[float, int], None] = lambda seconds, attempts: None  # bot/own_metrics.py
        self._next_paced_s: float | None = None
        self.cannot_join: dict[str, str] = {}  # channel -> why the bot could not join it (join_channels)

    # -- running ---------------------------------------------------------
    def start(self, *, join: Sequence[str] = (), war_room: str | None = None) -> None:
        """Run the loop; it first joins the channels in `join` (Slack is not waited for at start-up)."""
        self._thread = threading.Thread(target=self._loop, args=(tuple(join), war_room), name="outbox-loop",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def wake(self) -> None:
        self._wake.set()

    def join_channels(self, channels: Sequence[str], war_room: str | None) -> dict[str, str]:
        """Join the public channels the bot posts to, so that it can look a post up there after a lost
        answer; the war room hears of each one it cannot join (a private one must invite the bot)."""
        join = getattr(self.transport, "join", None)  # a terminal's transport has no channels to join
        self.cannot_join = {c: e for c in dict.fromkeys(channels) if join and (e := join(c))}
        if self.cannot_join and war_room:
            from commands.messages import report_cannot_join

            try:
                with transaction(self.engine) as session:
                    report_cannot_join(session, war_room, self.cannot_join, self.clock.now())
            except Exception:
                log.exception("could not report the channels the bot cannot join")
        return self.cannot_join

    def _loop(self, join: tuple[str, ...] = (), war_room: str | None = None) -> None:
        if join:
            self.join_channels(join, war_room)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.deliver_due(wait=False)
            except Exception:  # the loop must survive a database blip
                log.exception("outbox pass failed")
            nap = IDLE_WAIT_S if self._next_paced_s is None else min(IDLE_WAIT_S, self._next_paced_s)
            self._wake.wait(timeout=nap)
            self._wake.clear()
            # under a burst every commit wakes us: one pass per MIN_PASS_S is enough (commands are not slowed)
            rest = MIN_PASS_S - (time.monotonic() - started)
            if rest > 0:
                self._stop.wait(rest)

    def drain(self, *, max_passes: int = 1000) -> int:
        """Deliver until nothing is due now (tests and the shell). Returns how many were attempted."""
        total = 0
        for _ in range(max_passes):
            n = self.deliver_due(wait=True)
            total += n
            if n == 0:
                break
        return total

    # -- one pass --------------------------------------------------------
    def deliver_due(self, *, wait: bool) -> int:
        """Claim the turns the plan allows now (as many as there are idle workers: a claim must not age in
        a queue) and send them in parallel. The loop does not wait for the sends: a channel whose send
        finishes is paced and claimed again while slower ones still run."""
        with self._flight_lock:
            room = self.workers - self._in_flight
        if room <= 0:
            return 0
        claimed = self._claim(self.clock.now(), room)
        with self._flight_lock:
            self._in_flight += len(claimed)
        futures = [self._pool.submit(self._deliver_one, claim) for claim in claimed]
        if wait:
            for f in futures:
                f.result()
        return len(claimed)

    def _deliver_one(self, claim: Claim) -> None:
        try:
            self._deliver(claim)
        except Exception:  # logged, and the row's claim runs out: a later pass retries it
            log.exception("delivery failed", extra={"outbox_id": claim.id})
        finally:
            with self._flight_lock:
                self._in_flight -= 1
            self._wake.set()

    def _claim(self, now: Any, room: int) -> list[Claim]:
        wall = self.wall()
        claimed, self._next_paced_s = claim_turns(self.engine, now, wall, room, self.worker_id, self.claim_for)
        return claimed

    def _deliver(self, claim: Claim) -> None:
        started = time.monotonic()
        with reading(self.engine) as session:
            message = session.get(OutboxMessage, claim.id)
            assert message is not None
            riding = list(session.exec(select(OutboxMessage).where(
                OutboxMessage.merged_into == claim.id, OutboxMessage.status == "pending").order_by(OutboxMessage.id)))  # type: ignore[arg-type]
            thread_ts = _ref_ts(session, message.thread_ref)
            update_ts = _ref_ts(session, message.update_ref)
        if message.update_ref and update_ts is None:
            self._finish(claim, message, Outcome(ok=False, permanent="message_not_found"))
            return
        blind = None  # why this attempt goes without knowing whether an earlier one landed
        if claim.maybe_sent:
            try:
                found = self.transport.find_sent(message, thread_ts)
            except LookupImpossible as exc:
                if not message.urgent:  # a routine message twice is the greater harm: stop, and say so
                    self._finish(claim, message, Outcome(ok=False, unconfirmed=str(exc)))
                    return
                found, blind = None, str(exc)  # urgent: a duplicate is the lesser harm than none
            except LookupFailed as exc:
                self._finish(claim, message, Outcome(ok=False, transient=f"lookup failed: {exc}"[:200], uncertain=True))
                return
            if found:
                self._finish(claim, message, Outcome(ok=True, ts=found))
                return
            if time.monotonic() - started > self.claim_for.total_seconds() / 2:
                # the claim may run out while we send: let a later pass (with a fresh claim) do it
                self._finish(claim, message, Outcome(ok=False, transient="claim too old to send", uncertain=False))
                return
        # a post that carries replies queued behind it in its thread says all of them, in order
        sending = OutboxMessage(**{**message.model_dump(), "payload": join_replies(message, riding)}) if riding else message
        size = None
        if message.method == "files.upload" and "build" in message.payload:  # a file: built now, as the record is now
            try:
                if self.build_file is None:
                    raise RuntimeError("this outbox builds no files")
                content = self.build_file(message)
            except Exception as exc:  # a database blip: tried again after a backoff
                log.exception("could not build the file", extra={"outbox_id": message.id})
                self._finish(claim, message, Outcome(ok=False, transient=f"not built: {type(exc).__name__}"))
                return
            size = len(content.encode())
            sending = OutboxMessage(**{**message.model_dump(), "payload": {**message.payload, "content": content}})
        try:
            outcome = self.transport.send(sending, thread_ts, update_ts)
        except Exception as exc:  # a bug in a transport must not kill delivery
            log.exception("transport raised")
            outcome = Outcome(ok=False, transient=type(exc).__name__, uncertain=True)
        if blind and not outcome.ok and outcome.uncertain:  # sent again once only: a second doubt stops it
            outcome = Outcome(ok=False, unconfirmed=blind)
        self._finish(claim, message, outcome, sent=True, blind=blind, size=size)

    def _finish(self, claim: Claim, message: OutboxMessage, outcome: Outcome, *, sent: bool = False,
                blind: str | None = None, size: int | None = None) -> None:
        """Store what the attempt came to. `sent`: a request went out, so the key's next turn comes its pace
        after Slack's answer (not after our request: a slow request cannot squeeze the gap); else at once.
        `blind`: it went without the lookup an earlier attempt called for (LookupImpossible's reason).
        `size`: the bytes of the file it built (kept on the row for the record, the file itself is not)."""
        now = self.clock.now()
        failed: list[OutboxMessage] = []
        delivered: tuple[float, int] | None = None  # queued-to-posted seconds and attempts, once it is posted
        armed = False
        unconfirmed = blind if outcome.ok else outcome.unconfirmed  # what the war room hears about, if any
        pace = (self.update_pace_s if claim.key == UPDATES else self.pace_s) if sent else 0.0
        answer = None if message.method not in ANSWERED_METHODS else {
            "ok": outcome.ok, "ts": outcome.ts, "error": outcome.permanent or outcome.unconfirmed, **(outcome.answer or {})}
        with transaction(self.engine) as session:
            row = session.exec(select(OutboxMessage).where(OutboxMessage.id == message.id).with_for_update(key_share=True)).one()
            riding = list(session.exec(select(OutboxMessage).where(
                OutboxMessage.merged_into == message.id, OutboxMessage.status == "pending")))
            end_turn(session, claim.key, self.wall() + timedelta(seconds=pace))
            row.attempts += 1
            row.claimed_until = None
            if outcome.ok:
                if self._slack_was_down.is_set():
                    self._slack_was_down.clear()
                    resumed = self._resume_backed_off(session, now)
                    log.info("Slack answers again; resuming backed-off messages", extra={"count": resumed})
                row.status, row.ts, row.sent_at, row.error, row.uncertain = "sent", outcome.ts, now, None, False
                if size is not None:
                    row.payload = {**row.payload, "bytes": size}
                delivered = ((now - row.created_at).total_seconds() if row.created_at else 0.0, row.attempts)
                for rider in riding:  # their texts went out in this row's post
                    rider.status, rider.ts, rider.sent_at = "merged", outcome.ts, now
                if row.ref and outcome.ts:
                    session.merge(MessageRef(ref=row.ref, channel=row.channel, ts=outcome.ts))
                armed = self._arm_timer(session, row.arms_timer_id, now, answer)
            elif outcome.unconfirmed:  # may have landed, may not: kept, never sent again
                row.status, row.error = "unconfirmed", f"unconfirmed: {outcome.unconfirmed}"
                for rider in riding:
                    rider.status, rider.error = "unconfirmed", row.error
                armed = self._arm_timer(session, row.arms_timer_id, now, answer)
            elif outcome.permanent:
                row.status, row.error = "failed", outcome.permanent
                for rider in riding:
                    rider.status, rider.error = "failed", outcome.permanent
                armed = self._arm_timer(session, row.arms_timer_id, now, answer)
                failed = [row, *riding] if row.method not in ANSWERED_METHODS else []  # its timer says
            else:
                if outcome.retry_after is not None:  # Slack answered: not a failure of Slack's, not counted
                    wait = outcome.retry_after
                elif outcome.transient in AUTH_ERRORS:
                    wait = AUTH_BACKOFF_S
                    log.error("Slack refused the bot token; messages are kept until it is fixed",
                              extra={"error": outcome.transient})
                else:
                    row.failures += 1
                    wait = _backoff(row.failures)
                    self._slack_was_down.set()
                row.next_attempt_at = now + timedelta(seconds=wait)
                row.error = outcome.transient or "rate_limited"
                row.ts = outcome.ts or row.ts  # an upload whose answer was lost: its file's id, to look it up
                # earlier attempts were looked for before this one, so only this attempt's doubt remains
                # (unless there was no looking: then theirs does too)
                row.uncertain = outcome.uncertain or blind is not None
            session.add_all([row, *riding])
        log.info("outbox attempt", extra={"outbox_id": message.id, "channel": message.channel, "ok": outcome.ok,
                                          "error": row.error, "attempts": row.attempts, "carried": len(riding)})
        if delivered is not None:
            self.on_sent(*delivered)
        if armed:
            self.on_armed()
        for each in failed:
            self.on_failure(each)
        if unconfirmed:
            self._report_unconfirmed(row, resent=blind is not None, why=unconfirmed)

    @staticmethod
    def _resume_backed_off(session: Session, now: Any) -> int:
        """Slack answered after an outage: rows waiting out an outage backoff go now, not in up to 30 s.
        Rows waiting for a Retry-After or for a fixed token keep their wait."""
        return int(session.exec(  # type: ignore[call-overload]
            update(OutboxMessage).where(
                OutboxMessage.status == "pending", OutboxMessage.next_attempt_at > now,  # type: ignore[operator]
                OutboxMessage.error.is_not(None), OutboxMessage.error != "rate_limited",  # type: ignore[union-attr]
                OutboxMessage.error.not_in(AUTH_ERRORS),  # type: ignore[union-attr]
            ).values(next_attempt_at=None)
        ).rowcount)

    @staticmethod
    def _arm_timer(session: Session, timer_id: int | None, now: Any, answer: dict[str, Any] | None = None) -> bool:
        """An escalation counts from when its ping was actually posted: arm the next one now.
        `answer`: Slack's, for the timer's handler (ANSWERED_METHODS)."""
        if timer_id is None:
            return False
        timer = session.get(Timer, timer_id)
        if timer is not None and timer.done_at is None and timer.due_at is None:
            timer.due_at = now + timedelta(seconds=timer.delay_s or 0)
            if answer is not None:
                timer.payload = {**timer.payload, "answer": answer}
            session.add(timer)
            return True
        return False

    def _report_unconfirmed(self, message: OutboxMessage, *, resent: bool, why: str) -> None:
        from commands.messages import report_unconfirmed

        try:
            with transaction(self.engine) as session:
                report_unconfirmed(session, message, self.clock.now(), resent=resent, why=why)
        except Exception:
            log.exception("could not report an unconfirmed message")

    def _report_failure(self, message: OutboxMessage) -> None:
        from commands.messages import report_undeliverable

        try:
            with transaction(self.engine) as session:
                report_undeliverable(session, message, self.clock.now())
        except Exception:
            log.exception("could not report an undeliverable message")


def _ref_ts(session: Session, ref: str | None) -> str | None:
    if ref is None:
        return None
    row = session.get(MessageRef, ref)
    return row.ts if row else None


def _backoff(failures: int) -> float:
    """After the n-th transient failure in a row: 0.5 s, 1 s, 2 s, … up to 30 s."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** min(failures - 1, 10))
