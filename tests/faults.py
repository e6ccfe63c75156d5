"""Helpers shared by the fault, race and load tests: queue raw outbox rows, drive delivery
until the outbox is empty, and check the one invariant that matters: every row Slack
accepted was posted exactly once, in id order within its channel."""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.outbox_order import rank
from db.models import Launch, OutboxMessage
from db.session import transaction
from tests.conftest import POSTGRES
from tests.harness import Harness
from tests.standin import SlackStandin

# tests about PostgreSQL itself: skipped where no server answers (never in CI, where .ci/run starts one)
requires_postgres = pytest.mark.skipif(not POSTGRES and not os.environ.get("CI"), reason="no PostgreSQL on 127.0.0.1:5432")


def launch_id(bot: Harness) -> int:
    with bot.session() as s:
        launch = s.exec(select(Launch).order_by(Launch.id)).first()
        assert launch is not None and launch.id is not None
        return launch.id


def queue(bot: Harness, channel: str, n: int, *, label: str = "note") -> list[int]:
    """n plain messages to `channel`, as a command would queue them."""
    lid = launch_id(bot)
    ids = []
    with transaction(bot.runtime.engine) as s:
        for i in range(n):
            row = OutboxMessage(launch_id=lid, kind=f"test.{label}", channel=channel,
                                payload={"text": f"{label} {channel} #{i}"}, created_at=bot.clock.now())
            s.add(row)
            s.flush()
            assert row.id is not None
            ids.append(row.id)
    return ids


def pending(bot: Harness) -> int:
    with bot.session() as s:
        return int(s.exec(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == "pending")).one())


def settle(bot: Harness, *, step: timedelta = timedelta(seconds=5), limit: int = 60) -> int:
    """Deliver, moving the manual clock on by `step` between passes, until nothing is pending."""
    for i in range(limit):
        bot.deliver()
        if pending(bot) == 0:
            return i
        bot.clock.advance(step)
    raise AssertionError(f"{pending(bot)} outbox rows still pending after {limit} passes")


def outbox_id(args: dict[str, Any]) -> int | None:
    meta = args.get("metadata") or {}
    value = (meta.get("event_payload") or {}).get("outbox_id") if isinstance(meta, dict) else None
    return value if isinstance(value, int) else None


def landed_posts(standin: SlackStandin) -> list[dict[str, Any]]:
    """Every chat.postMessage the stand-in stored (answered in time or not)."""
    return standin.posts()


def assert_exactly_once(bot: Harness) -> dict[int, OutboxMessage]:
    """Each sent post row landed once; none landed twice; none landed for an unsent row;
    within a thread, and among a channel's top-level posts of one rank, rows landed in id order
    (a row merged into another's post landed with it)."""
    rows = {r.id: r for r in bot.outbox() if r.id is not None}
    posts = landed_posts(bot.standin)
    ids = [outbox_id(p) for p in posts]
    assert None not in ids, "a post without outbox metadata"
    twice = [i for i, n in Counter(ids).items() if n > 1]
    assert not twice, f"posted twice: {twice}"
    sent_posts = {i for i, r in rows.items() if r.status == "sent" and r.method == "chat.postMessage"}
    assert set(ids) == sent_posts, f"landed {sorted(set(ids) - sent_posts)} not marked sent; " \
                                   f"sent {sorted(sent_posts - set(ids))} never landed"
    disorder = out_of_order(rows, posts)
    assert not disorder, f"out of order: {disorder}"
    for r in rows.values():
        if r.status == "merged":
            assert r.merged_into in ids and rows[r.merged_into].status == "sent", f"{r.id} merged into an unsent post"
    for r in rows.values():
        if r.status == "sent" and r.method == "chat.postMessage":
            landed = next(p for p in posts if outbox_id(p) == r.id)
            assert landed["channel"] == r.channel
    return rows


# what became of a row once its text reached Slack (its own post, another's post, or a newer update)
DELIVERED = frozenset({"sent", "merged", "superseded"})


def out_of_order(rows: dict[int, OutboxMessage], posts: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The queues whose posts did not land in id order: each thread, and each channel's top-level posts
    of one rank (a rollback's first, then the other urgent ones, then routine ones: bot/outbox_order.py)."""
    by_queue: dict[tuple[str, Any], list[int]] = {}
    for p in posts:
        row = rows.get(outbox_id(p))  # type: ignore[arg-type]
        where = p.get("thread_ts") or (rank(row.kind, row.urgent) if row else None)
        by_queue.setdefault((str(p["channel"]), where), []).append(outbox_id(p))  # type: ignore[arg-type]
    return [queue_of for queue_of, seq in by_queue.items() if seq != sorted(seq)]


def add_launches(engine: Any, n: int, *, prefix: str = "C0ROOM") -> list[str]:
    """n more launches, each with its own war room (commands find their launch by channel)."""
    from datetime import UTC, datetime

    from db.models import RoleAssignment

    now = datetime.now(UTC)
    channels = [f"{prefix}{i}" for i in range(n)]
    with transaction(engine) as s:
        for ch in channels:
            launch = Launch(name=f"Launch {ch}", war_room=ch, timezone="UTC", created_at=now)
            s.add(launch)
            s.flush()
            assert launch.id is not None
            for role, user in (("commander", "U0COMMANDER"), ("eng_oncall", "U0ENG")):
                s.add(RoleAssignment(launch_id=launch.id, role=role, user_id=user, assigned_by="test",
                                     assigned_at=now))
    return channels
