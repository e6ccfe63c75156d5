"""`/rollback <reason>` (seed 000 §6): confirmation, broadcast, checklist, feature-flag webhook, decision.

The commander asks; the confirmation message (`rollback_confirm` / `rollback_cancel`, value = the
Rollback id) waits in the war room. With `rollback.approvals: 2` the commander and one other role
holder must both confirm (either order). On confirmation, in one transaction: the broadcast to the war
room and every broadcast channel, the `rollback.steps` checklist (a `rollback_step` button per step,
value `<rollback id>:<position>`, ticked by anyone and updated in place), a decision, and a
`rollback_webhook` Timer due now. The webhook itself is network I/O, so it is never called here: the
runner in bot/flag_webhook.py claims the timer with a lease (`claim_webhook`), calls httpx outside any
transaction, and records the outcome (`record_webhook_outcome`) in another. A crash mid-call lets the
lease expire and the call is made again: at-least-once, fine for an idempotent flag-off.

Only one rollback at a time: while one is pending or done, `/rollback` says so instead of asking again.
"""

from __future__ import annotations

from datetime import timedelta

from markupsafe import Markup
from sqlmodel import select

from commands.authority import locked_launch
from commands.context import Context, Result, post, record, role_holder, roles_of
from commands.decision import log_decision
from commands.errors import CommandError, Refused
from commands.leases import CallOutcome, Lease, claim_due, finish_due, status_line
from commands.registry import action, slash
from commands.render import render, reply
from commands.roles import COMMANDER, require_commander
from db.models import Rollback, RollbackStep, Timer

USAGE = reply("rollback.usage")
MAX_REASON = 500
ACTIVE = ("pending", "confirmed")
WEBHOOK_KIND = "rollback_webhook"


def rollback_ref(rollback: Rollback) -> str:
    return f"rollback:{rollback.id}"


def checklist_ref(rollback: Rollback) -> str:
    return f"rollback_steps:{rollback.id}"


def active_rollback(ctx: Context) -> Rollback | None:
    return ctx.session.exec(
        select(Rollback).where(Rollback.launch_id == ctx.launch.id, Rollback.status.in_(ACTIVE))  # type: ignore[attr-defined]
        .order_by(Rollback.id.desc())  # type: ignore[union-attr]
    ).first()


def request_rollback(ctx: Context, reason: str, *, source: str = "command") -> tuple[Rollback, bool]:
    """Post the confirmation for a new rollback; (the existing one, False) when one is pending or done."""
    locked_launch(ctx)
    existing = active_rollback(ctx)
    if existing is not None:
        return existing, False
    rollback = Rollback(launch_id=ctx.launch.id, reason=reason, requested_by=ctx.user, requested_at=ctx.now,
                        status="pending", approvals=[])
    ctx.session.add(rollback)
    ctx.session.flush()
    record(ctx, "rollback.requested", rollback_id=rollback.id, reason=reason, source=source)
    post(ctx, ctx.launch.war_room, "rollback_confirmation", kind="rollback.confirmation", ref=rollback_ref(rollback),
         urgent=True, **confirmation_values(ctx, rollback))
    return rollback, True


def confirmation_values(ctx: Context, rollback: Rollback) -> dict[str, object]:
    return {"rollback": rollback, "needed": ctx.config.rollback_approvals,
            "commander": role_holder(ctx.session, ctx.launch.id, COMMANDER)}


@slash("/rollback", usage=USAGE, summary="call for a rollback: confirmation, broadcast, checklist, flag webhook (commander)")
def rollback_command(ctx: Context, text: str) -> Result:
    require_commander(ctx, "/rollback")
    reason = " ".join(text.split())
    if not reason:
        raise CommandError(reply("rollback.needs_reason"), USAGE)
    if len(reason) > MAX_REASON:
        raise CommandError(reply("rollback.reason_too_long", length=len(reason), limit=MAX_REASON), USAGE)
    rollback, created = request_rollback(ctx, reason)
    if not created:
        return Result(reply=reply("rollback.exists", rollback=rollback, tz=ctx.tz))
    return Result(reply=reply("rollback.requested", needed=ctx.config.rollback_approvals))


def load(ctx: Context, value: str) -> Rollback:
    if not value.strip().isdigit():
        raise CommandError(reply("common.unknown_button_value"))
    rollback = ctx.session.exec(
        select(Rollback).where(Rollback.id == int(value), Rollback.launch_id == ctx.launch.id).with_for_update(key_share=True)
    ).first()
    if rollback is None:
        raise CommandError(reply("rollback.not_of_this_launch"))
    return rollback


def require_open(ctx: Context, rollback: Rollback) -> None:
    if rollback.status == "cancelled":
        raise CommandError(reply("rollback.was_cancelled", rollback=rollback))


def check_approver(ctx: Context, rollback: Rollback) -> None:
    """The commander may always confirm; with two approvals, one other role holder may confirm too."""
    commander = role_holder(ctx.session, ctx.launch.id, COMMANDER)
    needed = ctx.config.rollback_approvals
    if ctx.user == commander:
        return
    if needed < 2:
        raise Refused(reply("roles.refused_commander", command="rollback confirmation", holder=commander),
                      "rollback_confirm")
    if not roles_of(ctx.session, ctx.launch.id, ctx.user):
        raise Refused(reply("rollback.refused_approver", commander=commander), "rollback_confirm")
    others = [a for a in rollback.approvals if a != commander]
    if len(others) >= needed - 1:
        raise CommandError(reply("rollback.needs_commander", other=others[0], commander=commander))


@action("rollback_confirm")
def confirm_button(ctx: Context, value: str) -> Result:
    rollback = load(ctx, value)
    require_open(ctx, rollback)
    if rollback.status == "confirmed":
        return Result(reply=reply("rollback.exists", rollback=rollback, tz=ctx.tz))
    if ctx.user in rollback.approvals:
        return Result(reply=reply("rollback.waiting", rollback=rollback, already=True))
    check_approver(ctx, rollback)
    rollback.approvals = [*rollback.approvals, ctx.user]
    ctx.session.add(rollback)
    record(ctx, "rollback.approved", rollback_id=rollback.id, approvals=rollback.approvals)
    commander = role_holder(ctx.session, ctx.launch.id, COMMANDER)
    if commander not in rollback.approvals or len(rollback.approvals) < ctx.config.rollback_approvals:
        post(ctx, ctx.launch.war_room, "rollback_confirmation", kind="rollback.confirmation_update",
             update_ref=rollback_ref(rollback), urgent=True, **confirmation_values(ctx, rollback))
        return Result(reply=reply("rollback.waiting", rollback=rollback, already=False))
    initiate(ctx, rollback)
    return Result(reply=reply("rollback.initiated", webhook=ctx.config.webhook))


def initiate(ctx: Context, rollback: Rollback) -> None:
    """Confirmed: broadcast, checklist, webhook queued, decision logged, confirmation message updated."""
    rollback.status = "confirmed"
    rollback.confirmed_at = ctx.now
    for channel in dict.fromkeys([ctx.launch.war_room, *ctx.config.broadcast]):
        post(ctx, channel, "rollback_broadcast", kind="rollback.broadcast", urgent=True, rollback=rollback)
    steps = [RollbackStep(rollback_id=rollback.id, position=i, text=text)
             for i, text in enumerate(ctx.config.rollback_steps, start=1)]
    ctx.session.add_all(steps)
    ctx.session.flush()
    if steps:
        post(ctx, ctx.launch.war_room, "rollback_checklist", kind="rollback.checklist", ref=checklist_ref(rollback),
             **checklist_values(ctx, rollback, steps))
    if ctx.config.webhook is not None:
        ctx.session.add(Timer(launch_id=ctx.launch.id, kind=WEBHOOK_KIND, subject_id=rollback.id, due_at=ctx.now,
                              created_at=ctx.now, payload={"claims": 0}))
        rollback.webhook_status = "queued"
    else:
        rollback.webhook_status = "not configured"
        post(ctx, ctx.launch.war_room, "rollback_webhook_missing", kind="rollback.webhook",
             eng=role_holder(ctx.session, ctx.launch.id, "eng_oncall"))
    ctx.session.add(rollback)
    log_decision(ctx, "rollback", rollback.reason, rollback_id=rollback.id, requested_by=rollback.requested_by,
                 approvals=rollback.approvals)
    record(ctx, "rollback.confirmed", rollback_id=rollback.id, reason=rollback.reason, approvals=rollback.approvals)
    post(ctx, ctx.launch.war_room, "rollback_confirmation", kind="rollback.confirmation_update",
         update_ref=rollback_ref(rollback), urgent=True, **confirmation_values(ctx, rollback))


def checklist_values(ctx: Context, rollback: Rollback, steps: list[RollbackStep]) -> dict[str, object]:
    """Each step rendered once (escaped by the text template), shared by the text and the blocks."""
    lines = [Markup(render("rollback_checklist_step.j2", step=s, tz=ctx.tz)) for s in steps]
    return {"rollback": rollback, "steps": steps, "step_lines": lines}


@action("rollback_cancel")
def cancel_button(ctx: Context, value: str) -> Result:
    rollback = load(ctx, value)
    if rollback.status == "cancelled":
        return Result(reply=reply("rollback.was_cancelled", rollback=rollback))
    require_commander(ctx, "rollback cancel")
    if rollback.status == "confirmed":
        raise CommandError(reply("rollback.exists", rollback=rollback, tz=ctx.tz))
    rollback.status = "cancelled"
    ctx.session.add(rollback)
    record(ctx, "rollback.cancelled", rollback_id=rollback.id, reason=rollback.reason)
    post(ctx, ctx.launch.war_room, "rollback_confirmation", kind="rollback.confirmation_update",
         update_ref=rollback_ref(rollback), **confirmation_values(ctx, rollback))
    return Result(reply=reply("rollback.cancelled"))


@action("rollback_step")
def step_button(ctx: Context, value: str) -> Result:
    rollback_id, _, position = value.partition(":")
    if not position.isdigit():
        raise CommandError(reply("common.unknown_button_value"))
    rollback = load(ctx, rollback_id)
    step = ctx.session.exec(
        select(RollbackStep).where(RollbackStep.rollback_id == rollback.id, RollbackStep.position == int(position))
        .with_for_update(key_share=True)
    ).first()
    if step is None or rollback.status != "confirmed":
        raise CommandError(reply("rollback.step_not_confirmed"))
    if step.done_at is not None:
        return Result(reply=reply("rollback.step_already", step=step, tz=ctx.tz))
    step.done_by = ctx.user
    step.done_at = ctx.now
    ctx.session.add(step)
    record(ctx, "rollback.step_done", rollback_id=rollback.id, position=step.position, step=step.text)
    steps = list(ctx.session.exec(
        select(RollbackStep).where(RollbackStep.rollback_id == rollback.id).order_by(RollbackStep.position)).all())
    post(ctx, ctx.launch.war_room, "rollback_checklist", kind="rollback.checklist_update",
         update_ref=checklist_ref(rollback), **checklist_values(ctx, rollback, steps))
    if all(s.done_at is not None for s in steps):
        record(ctx, "rollback.checklist_complete", rollback_id=rollback.id)
        post(ctx, ctx.launch.war_room, "rollback_checklist_done", kind="rollback.checklist_done",
             rollback=rollback, steps=steps)
    return Result(reply=reply("rollback.step_ticked", step=step))


# -- the feature-flag webhook: claimed and recorded here, called at the edge (bot/flag_webhook.py) --------


def claim_webhook(ctx: Context, timer_id: int, lease: timedelta) -> Lease | None:
    """Take a due webhook timer for `lease` (compare-and-set on due_at); None when another runner has it.
    The lease's subject is the rollback."""
    return claim_due(ctx, timer_id, WEBHOOK_KIND, lease)


def record_webhook_outcome(ctx: Context, claim: Lease, outcome: CallOutcome) -> None:
    """What the flag webhook answered: stored, audited, and told to the war room (loudly when it failed)."""
    if finish_due(ctx, claim.timer_id, outcome) is None:  # a runner whose lease had expired finished first: idempotent
        record(ctx, "rollback.webhook_duplicate", rollback_id=claim.subject_id, ok=outcome.ok, status=outcome.status)
        return
    rollback = ctx.session.get(Rollback, claim.subject_id)
    assert rollback is not None
    rollback.webhook_status = status_line(outcome)
    ctx.session.add(rollback)
    record(ctx, "rollback.webhook", rollback_id=rollback.id, ok=outcome.ok, status=outcome.status,
           error=outcome.error, attempts=outcome.attempts, elapsed_ms=round(outcome.elapsed_ms, 1))
    template = "rollback_webhook_ok" if outcome.ok else "rollback_webhook_failed"
    post(ctx, ctx.launch.war_room, template, kind="rollback.webhook", rollback=rollback, outcome=outcome,
         commander=role_holder(ctx.session, ctx.launch.id, COMMANDER),
         eng=role_holder(ctx.session, ctx.launch.id, "eng_oncall"))
