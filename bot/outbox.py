"""The one way out: deliver outbox rows to Slack, exactly once, in order per channel.

A row is claimed (`UPDATE … WHERE claimed_until < now`) before it is sent, so two
replicas never send the same row; it is marked sent only when Slack said ok.
429s wait for Retry-After; 5xx, timeouts and connection errors back off and
retry until Slack answers; permanent errors (channel_not_found, not_in_channel,
…) stop, are kept for export and are reported in the war room (or the log when
the war room itself is the broken channel). A send whose outcome is unknown (a
timeout after the request left) is looked up by its metadata before it is sent
again, so a retry never posts twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from commands.clock import Clock
from db.models import MessageRef, OutboxMessage, Timer
from db.session import transaction

log = logging.getLogger("warroom.outbox")

PACE_S = 1.0  # chat.postMessage: about one message a second per channel (Slack counts real time)
CLAIM_FOR = timedelta(seconds=120)
MAX_BACKOFF_S = 30.0
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_blocks", "invalid_blocks_format",
    "msg_too_long", "msg_blocks_too_long", "no_text", "invalid_auth", "not_authed", "account_inactive",
    "token_revoked", "missing_scope", "cant_update_message", "message_not_found", "edit_window_closed",
    "restricted_action", "user_not_in_channel", "invalid_arguments", "too_many_attachments",
})
METADATA_EVENT = "warroom_outbox"


@dataclass(frozen=True)
class Outcome:
    """What one send attempt came to."""

    ok: bool
    ts: str | None = None
    retry_after: float | None = None  # 429: wait this long
    permanent: str | None = None  # Slack's error code: do not retry
    transient: str | None = None  # 5xx, connection error: back off and retry
    uncertain: bool = False  # the request may have landed: look before resending


class Transport(Protocol):
    def send(self, message: OutboxMessage, thread_ts: str | None, update_ts: str | None) -> Outcome: ...

    def find_sent(self, message: OutboxMessage, thread_ts: str | None) -> str | None:
        """The ts of a message this row already posted, if Slack has one (by its metadata)."""
        ...


class Outbox:
    def __init__(self, engine: Engine, transport: Transport, clock: Clock, *, workers: int = 8,
                 worker_id: str | None = None, pace_s: float = PACE_S) -> None:
        self.engine = engine
        self.pace_s = pace_s
        self._last_post: dict[str, float] = {}
        self.transport = transport
        self.clock = clock
        self.worker_id = worker_id or f"outbox-{uuid.uuid4().hex[:8]}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="outbox")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_failure: Callable[[OutboxMessage], None] = self._report_failure

    # -- running ---------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due(wait=True)
            except Exception:  # the loop must survive a database blip
                log.exception("outbox pass failed")
            self._wake.wait(timeout=0.25)
            self._wake.clear()

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
        """Claim the head row of every channel that may send now, send them in parallel."""
        now = self.clock.now()
        claimed = self._claim_heads(now)
        futures = [self._pool.submit(self._deliver, message_id) for message_id in claimed]
        if wait:
            for f in futures:
                f.result()
        return len(claimed)

    def _claim_heads(self, now: Any) -> list[int]:
        with Session(self.engine) as session:
            heads = select(OutboxMessage.channel, func.min(OutboxMessage.id).label("id")).where(
                OutboxMessage.status == "pending").group_by(OutboxMessage.channel).subquery()
            rows = session.exec(select(OutboxMessage).join(heads, OutboxMessage.id == heads.c.id)).all()
        claimed: list[int] = []
        paced_until = time.monotonic() - self.pace_s
        ready = [row for row in rows
                 if not (row.next_attempt_at and row.next_attempt_at > now)
                 and not (row.claimed_until and row.claimed_until > now)
                 and not (row.method == "chat.postMessage" and self._last_post.get(row.channel, 0.0) > paced_until)]
        if not ready:
            return claimed
        with transaction(self.engine) as session:  # one transaction for the pass: each claim is still conditional
            for row in ready:
                won = session.exec(  # type: ignore[call-overload]
                    update(OutboxMessage).where(
                        OutboxMessage.id == row.id, OutboxMessage.status == "pending",
                        (OutboxMessage.claimed_until.is_(None)) | (OutboxMessage.claimed_until <= now),  # type: ignore[union-attr]
                    ).values(claimed_until=now + CLAIM_FOR, claimed_by=self.worker_id)
                ).rowcount
                if won == 1:
                    claimed.append(row.id)
        return claimed

    def _deliver(self, message_id: int) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            message = session.get(OutboxMessage, message_id)
            assert message is not None
            thread_ts = _ref_ts(session, message.thread_ref)
            update_ts = _ref_ts(session, message.update_ref)
        if message.update_ref and update_ts is None:
            self._finish(message, Outcome(ok=False, permanent="message_not_found"))
            return
        if message.uncertain:
            found = self.transport.find_sent(message, thread_ts)
            if found:
                self._finish(message, Outcome(ok=True, ts=found))
                return
        if message.method == "chat.postMessage":
            self._last_post[message.channel] = time.monotonic()
        try:
            outcome = self.transport.send(message, thread_ts, update_ts)
        except Exception as exc:  # a bug in a transport must not kill delivery
            log.exception("transport raised")
            outcome = Outcome(ok=False, transient=type(exc).__name__, uncertain=True)
        self._finish(message, outcome)

    def _finish(self, message: OutboxMessage, outcome: Outcome) -> None:
        now = self.clock.now()
        failed = False
        with transaction(self.engine) as session:
            row = session.exec(select(OutboxMessage).where(OutboxMessage.id == message.id).with_for_update()).one()
            row.attempts += 1
            row.claimed_until = None
            if outcome.ok:
                row.status, row.ts, row.sent_at, row.error, row.uncertain = "sent", outcome.ts, now, None, False
                if row.ref and outcome.ts:
                    session.merge(MessageRef(ref=row.ref, channel=row.channel, ts=outcome.ts))
                self._arm_timer(session, row.arms_timer_id, now)
            elif outcome.permanent:
                row.status, row.error = "failed", outcome.permanent
                self._arm_timer(session, row.arms_timer_id, now)
                failed = True
            else:
                wait = outcome.retry_after if outcome.retry_after is not None else _backoff(row.attempts)
                row.next_attempt_at = now + timedelta(seconds=wait)
                row.error = outcome.transient or "rate_limited"
                row.uncertain = row.uncertain or outcome.uncertain
            session.add(row)
        log.info("outbox attempt", extra={"outbox_id": message.id, "channel": message.channel,
                                          "ok": outcome.ok, "error": row.error, "attempts": row.attempts})
        if failed:
            self.on_failure(row)

    @staticmethod
    def _arm_timer(session: Session, timer_id: int | None, now: Any) -> None:
        """An escalation counts from when its ping was actually posted: arm the next one now."""
        if timer_id is None:
            return
        timer = session.get(Timer, timer_id)
        if timer is not None and timer.done_at is None and timer.due_at is None:
            timer.due_at = now + timedelta(seconds=timer.delay_s or 0)
            session.add(timer)

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


def _backoff(attempts: int) -> float:
    return min(MAX_BACKOFF_S, 0.5 * 2 ** min(attempts, 10))
