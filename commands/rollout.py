"""`/rollout` (seed 003's phases, seed 000 §5–6's thresholds): status, start, advance, hold.

The phase is the newest RolloutPhase row of the launch (it survives restarts; `current_phase`). Entering a
phase is one transaction: the row, a decision, the war-room post, and a `rollout_webhook` Timer due now.
The webhook is network I/O, so it is never called here: the runner in bot/flag_webhook.py claims the
timer with a lease (commands/leases.py `claim_due`), calls it with this phase's percent outside
any transaction (`Idempotency-Key` warroom-rollout-<launch>-<phase row>), and `record_phase_webhook`
posts the outcome. An advance (the command, or the checkpoint's *widen*) is refused until every gate
of the current phase has held, reading after reading, for the phase's `hold_for`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from commands.authority import locked_launch, require_commander
from commands.config_rollout import Condition
from commands.context import Context, Result, post, record, role_holder
from commands.decision import log_decision
from commands.errors import CommandError
from commands.leases import CallOutcome, Lease, claim_due, finish_due, status_line
from commands.metrics import judged, latest_reading, metric_figures, stale_after, streak_since
from commands.registry import slash
from commands.render import reply
from commands.roles import COMMANDER
from db.models import Timer
from db.rollout import RolloutPhase

USAGE = reply("rollout.usage")
WEBHOOK_KIND = "rollout_webhook"
MAX_REASON = 500


def current_phase(session: Session, launch_id: int) -> RolloutPhase | None:
    """The phase the launch is in (None: the rollout has not started)."""
    return session.exec(select(RolloutPhase).where(RolloutPhase.launch_id == launch_id)
                        .order_by(RolloutPhase.position.desc()).limit(1)).first()  # type: ignore[attr-defined]


def gates_in_force(ctx: Context) -> tuple[Condition, ...]:
    """The current phase's gates; before the start, the first phase's (what the launch must show first)."""
    assert ctx.launch.id is not None
    row = current_phase(ctx.session, ctx.launch.id)
    phase = ctx.config.rollout.phase(row.phase) if row else ctx.config.rollout.after(None)
    return tuple(phase.gates) if phase is not None else ()


def gate_report(ctx: Context, row: RolloutPhase) -> list[dict[str, Any]]:
    """Each gate of the phase: its newest reading, pass or fail, and since when it has held in this phase."""
    assert ctx.launch.id is not None
    phase = ctx.config.rollout.phase(row.phase)
    hold_for = (phase.hold_for if phase else None) or timedelta(0)
    report = []
    for gate in (phase.gates if phase else ()):
        reading = latest_reading(ctx.session, ctx.launch.id, gate.metric)
        verdict = judged(ctx, gate, reading)
        since = streak_since(ctx, gate, row.entered_at) if verdict == "pass" else None
        held_for = ctx.now - since if since is not None else timedelta(0)
        report.append({"gate": gate, "reading": reading, "verdict": verdict, "since": since, "held_for": held_for,
                       "held": since is not None and held_for >= hold_for})
    return report


def phase_values(ctx: Context, row: RolloutPhase | None) -> dict[str, Any]:
    phase = ctx.config.rollout.phase(row.phase) if row else None
    return {"row": row, "phase": phase, "next": ctx.config.rollout.after(row.phase if row else None),
            "gates": gate_report(ctx, row) if row else [], "held": (ctx.now - row.entered_at) if row and row.entered_at else None,
            "hold_for": phase.hold_for if phase else None}


@slash("/rollout", usage=USAGE, summary="the phased rollout: status, start, advance (gated), hold (commander)")
def rollout_command(ctx: Context, text: str) -> Result:
    verb, _, rest = text.strip().partition(" ")
    verb = verb.lower() or "status"
    if verb not in ("status", "start", "advance", "hold"):
        raise CommandError(reply("rollout.not_a_subcommand", word=verb[:40]), USAGE)
    if verb in ("status", "start", "advance") and rest.strip():
        raise CommandError(reply("rollout.takes_nothing", verb=verb), USAGE)
    if not ctx.config.rollout.phases:
        raise CommandError(reply("rollout.not_configured"))
    if verb == "status":
        assert ctx.launch.id is not None
        return Result(reply=reply("rollout.status", **phase_values(ctx, current_phase(ctx.session, ctx.launch.id)),
                                  tz=ctx.tz))
    require_commander(ctx, f"/rollout {verb}")
    if verb == "start":
        return start(ctx)
    if verb == "advance":
        row = advance(ctx, source="command")
        return Result(reply=reply("rollout.advanced", row=row))
    return hold(ctx, " ".join(rest.split()))


def start(ctx: Context) -> Result:
    locked_launch(ctx)
    assert ctx.launch.id is not None
    row = current_phase(ctx.session, ctx.launch.id)
    if row is not None:
        raise CommandError(reply("rollout.already_started", row=row, tz=ctx.tz))
    first = ctx.config.rollout.phases[0]
    row = enter(ctx, first, position=0, source="command")
    return Result(reply=reply("rollout.started", row=row, webhook=ctx.config.rollout.webhook))


def advance(ctx: Context, *, source: str) -> RolloutPhase:
    """Into the next phase, if every gate of this one has held for its hold_for; else a refusal naming the gate."""
    locked_launch(ctx)
    assert ctx.launch.id is not None
    row = current_phase(ctx.session, ctx.launch.id)
    if row is None:
        raise CommandError(reply("rollout.not_started"))
    following = ctx.config.rollout.after(row.phase)
    if following is None:
        raise CommandError(reply("rollout.at_last_phase", row=row))
    phase = ctx.config.rollout.phase(row.phase)
    hold_for = (phase.hold_for if phase else None) or timedelta(0)
    held = ctx.now - row.entered_at if row.entered_at else timedelta(0)
    for gate in gate_report(ctx, row):
        if not gate["held"]:
            raise CommandError(reply("rollout.gate_not_held", row=row, hold_for=hold_for, tz=ctx.tz,
                                     stale_after=stale_after(ctx), **gate))
    if held < hold_for:
        raise CommandError(reply("rollout.not_held_long_enough", row=row, hold_for=hold_for, held=held))
    return enter(ctx, following, position=row.position + 1, source=source, previous=row)


def enter(ctx: Context, phase: Any, *, position: int, source: str, previous: RolloutPhase | None = None) -> RolloutPhase:
    """The phase change: the row, the webhook timer, the decision and the war-room post, in one transaction."""
    row = RolloutPhase(launch_id=ctx.launch.id, position=position, phase=phase.name, percent=phase.percent,
                       entered_at=ctx.now, entered_by=ctx.user)
    ctx.session.add(row)
    ctx.session.flush()
    webhook = ctx.config.rollout.webhook
    if webhook is not None:
        ctx.session.add(Timer(launch_id=ctx.launch.id, kind=WEBHOOK_KIND, subject_id=row.id, due_at=ctx.now,
                              created_at=ctx.now, payload={"claims": 0}))
        row.webhook_status = "queued"
    else:
        row.webhook_status = "not configured"
    ctx.session.add(row)
    text = f"{phase.name} ({percent_text(phase.percent)}%)"
    log_decision(ctx, "rollout", text, phase=phase.name, percent=phase.percent, source=source,
                 previous=previous.phase if previous else None)
    record(ctx, "rollout.phase_entered", phase=phase.name, percent=phase.percent, position=position, source=source)
    post(ctx, ctx.launch.war_room, "rollout_phase", kind="rollout.phase", row=row, phase=phase, previous=previous,
         following=ctx.config.rollout.after(phase.name), webhook=webhook, source=source,
         eng=role_holder(ctx.session, ctx.launch.id, "eng_oncall"))
    return row


def hold(ctx: Context, reason: str) -> Result:
    if not reason:
        raise CommandError(reply("rollout.hold_needs_reason"), USAGE)
    if len(reason) > MAX_REASON:
        raise CommandError(reply("rollout.reason_too_long", length=len(reason), limit=MAX_REASON), USAGE)
    locked_launch(ctx)
    assert ctx.launch.id is not None
    row = current_phase(ctx.session, ctx.launch.id)
    if row is None:
        raise CommandError(reply("rollout.not_started"))
    log_decision(ctx, "rollout", f"hold at {row.phase}: {reason}", phase=row.phase, percent=row.percent, hold=True)
    record(ctx, "rollout.held", phase=row.phase, reason=reason)
    post(ctx, ctx.launch.war_room, "rollout_hold", kind="rollout.hold", row=row, reason=reason)
    return Result(reply=reply("rollout.held", row=row))


def figures(ctx: Context) -> list[dict[str, Any]]:
    """The readings heartbeats and checkpoints show: each source against the gates in force."""
    if not ctx.config.metrics.sources:
        return []
    return metric_figures(ctx, gates_in_force(ctx))


# -- the webhook: its body, the claim (the rollback webhook's) and the outcome ------------------------
def percent_text(percent: float) -> str:
    return f"{percent:g}"


def with_percent(body: Any, percent: float) -> Any:
    """The configured body with `{percent}`: a string that is exactly it becomes the number; inside a
    longer string it is replaced as text."""
    number: int | float = int(percent) if float(percent).is_integer() else percent
    if isinstance(body, str):
        return number if body == "{percent}" else body.replace("{percent}", percent_text(percent))
    if isinstance(body, dict):
        return {k: with_percent(v, percent) for k, v in body.items()}
    if isinstance(body, list | tuple):
        return [with_percent(v, percent) for v in body]
    return body


def claim_phase_webhook(ctx: Context, timer_id: int, lease: timedelta) -> tuple[Lease, float] | None:
    """The due phase webhook and the percent to send; None when another runner has it."""
    claim = claim_due(ctx, timer_id, WEBHOOK_KIND, lease)
    if claim is None:
        return None
    row = ctx.session.get(RolloutPhase, claim.subject_id)
    assert row is not None
    return claim, row.percent


def record_phase_webhook(ctx: Context, claim: Lease, outcome: CallOutcome) -> None:
    """What the flag service answered for the phase change: stored, audited, posted (loudly when it failed)."""
    if finish_due(ctx, claim.timer_id, outcome) is None:  # a runner whose lease had expired finished first
        record(ctx, "rollout.webhook_duplicate", phase_id=claim.subject_id, ok=outcome.ok, status=outcome.status)
        return
    row = ctx.session.get(RolloutPhase, claim.subject_id)
    assert row is not None
    row.webhook_status = status_line(outcome)
    ctx.session.add(row)
    record(ctx, "rollout.webhook", phase=row.phase, percent=row.percent, ok=outcome.ok, status=outcome.status,
           error=outcome.error, attempts=outcome.attempts, elapsed_ms=round(outcome.elapsed_ms, 1))
    post(ctx, ctx.launch.war_room, "rollout_webhook_ok" if outcome.ok else "rollout_webhook_failed",
         kind="rollout.webhook", row=row, outcome=outcome, urgent=not outcome.ok,
         commander=role_holder(ctx.session, ctx.launch.id, COMMANDER),
         eng=role_holder(ctx.session, ctx.launch.id, "eng_oncall"))
