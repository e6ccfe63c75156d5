"""`rollout.rollback_when`: a condition that holds for every reading over its `for` fires, once.

The readings the edge took are stored and the triggers checked in one transaction, under the launch
lock (PostgreSQL: FOR NO KEY UPDATE), so replicas take turns and the second sees the first's firing: a
TriggerFiring row per trigger and streak (unique), where the streak is the run of readings holding the
condition, from its first one. A reading that does not hold, or failed, ends the streak: a condition
that holds for part of the window does nothing. Firing posts `Rollback trigger` mentioning the
commander; `propose` opens the rollback confirmation, `rollback` runs the rollback at once.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from commands.authority import locked_launch
from commands.context import Context, post, record, role_holder
from commands.metrics import Reading, latest_reading, store_readings, streak_since
from commands.parse import format_duration
from commands.roles import COMMANDER
from commands.rollback import active_rollback, initiate, request_rollback
from db.models import Rollback
from db.rollout import TriggerFiring


def record_readings(ctx: Context, readings: list[Reading]) -> list[TriggerFiring]:
    """Store what the edge read, then fire each trigger whose condition has held for its window."""
    locked_launch(ctx)
    store_readings(ctx, readings)
    ctx.session.flush()
    read = {r.source for r in readings}
    fired = []
    for trigger in ctx.config.rollout.rollback_when:
        if trigger.when.metric in read:
            firing = check(ctx, trigger)
            if firing is not None:
                fired.append(firing)
    return fired


def condition_text(trigger: Any) -> str:
    """What the broadcast and the decision name: `error_rate > 0.5 for 10m`."""
    return f"{trigger.when} for {format_duration(trigger.for_)}"


def check(ctx: Context, trigger: Any) -> TriggerFiring | None:
    since = streak_since(ctx, trigger.when)
    if since is None or ctx.now - since < trigger.for_:
        return None
    already = ctx.session.exec(select(TriggerFiring).where(
        TriggerFiring.launch_id == ctx.launch.id, TriggerFiring.trigger == trigger.key,
        TriggerFiring.streak_from == since)).first()
    if already is not None:
        return None
    assert ctx.launch.id is not None
    reading = latest_reading(ctx.session, ctx.launch.id, trigger.when.metric)
    value = reading.value if reading else None
    firing = TriggerFiring(launch_id=ctx.launch.id, trigger=trigger.key, streak_from=since, fired_at=ctx.now,
                           value=value)
    ctx.session.add(firing)
    condition = condition_text(trigger)
    rollback = fire(ctx, trigger, condition, value)
    firing.rollback_id = rollback.id if rollback else None
    ctx.session.add(firing)
    record(ctx, "rollout.trigger_fired", trigger=trigger.key, condition=condition, value=value,
           action=trigger.action, since=since.isoformat(), rollback_id=firing.rollback_id)
    return firing


def fire(ctx: Context, trigger: Any, condition: str, value: float | None) -> Rollback | None:
    action = trigger.action
    existing = active_rollback(ctx)
    post(ctx, ctx.launch.war_room, "rollback_trigger", kind="rollback.trigger", urgent=True, condition=condition,
         value=value, action=action, existing=existing,
         commander=role_holder(ctx.session, ctx.launch.id, COMMANDER))  # type: ignore[arg-type]
    if action == "propose":
        rollback, _ = request_rollback(ctx, condition, source="trigger")
        return rollback
    if existing is not None and existing.status == "confirmed":
        return existing  # already rolled back: never broadcast twice
    if existing is None:
        existing = Rollback(launch_id=ctx.launch.id, reason=condition, requested_by=ctx.user, requested_at=ctx.now,
                            status="pending", approvals=[])
        ctx.session.add(existing)
        ctx.session.flush()
        record(ctx, "rollback.requested", rollback_id=existing.id, reason=condition, source="trigger")
    existing.reason = condition  # a proposal waiting for confirmation is overtaken by the automatic rollback
    existing.approvals = [*existing.approvals, ctx.user]
    initiate(ctx, existing)
    return existing
