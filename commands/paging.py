"""Paging through PagerDuty's Events API v2: trigger, acknowledge and resolve, one dedup_key per incident.

An escalation that reaches a `paging.page_roles` role triggers (once per incident; `/incident page
INC-7 [role]`, the owner or the commander, triggers again at once), `/incident ack` and the Acknowledge
button acknowledge, resolving resolves: the last two only for an incident that was triggered. Each
event is a `pagerduty_event` Timer due now, queued in the command's own transaction; the edge
(bot/pagerduty.py) claims it with a lease, sends it outside any transaction and records the outcome
here. The incident's events go in order (an acknowledge waits for its trigger). A crash between the send
and its record sends it again with the same `dedup_key`, which PagerDuty de-duplicates: at least once.
A 429, a 5xx or no answer is tried again later; a 4xx is reported in the war room. The routing key is
read at the edge and is never stored, posted, logged or exported. A rehearsal pages nobody: it posts what
it would have sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import select

from commands.config_types import STANDARD_ROLES
from commands.context import Context, Result, held_roles, record, role_holder
from commands.errors import CommandError
from commands.incident import require_open, require_owner_or_commander, thread
from commands.leases import CallOutcome, Lease, backoff, claim_due, finish_due, retry_later
from commands.render import reply
from db.models import Incident, Timer

PAGE_KIND = "pagerduty_event"
PAGE_SEVERITY = {"sev1": "critical", "sev2": "error", "sev3": "warning", "sev4": "info"}
MAX_CLAIMS = 12  # tried this often (about 45 minutes of backoff) without an answer, an event is reported lost
MAX_SUMMARY = 1024  # PagerDuty's limit for payload.summary


def dedup_key(ctx: Context, incident: Incident) -> str:
    return f"warroom-{ctx.launch.id}-INC-{incident.number}"


def was_triggered(ctx: Context, incident: Incident) -> bool:
    """Whether any PagerDuty event was queued for the incident (the first is always a trigger)."""
    return ctx.session.exec(select(Timer.id).where(Timer.kind == PAGE_KIND, Timer.subject_id == incident.id)).first() \
        is not None


def event_for(ctx: Context, incident: Incident, action: str, role: str | None, user: str | None) -> dict[str, Any]:
    """The event as PagerDuty takes it, without the routing key (the edge adds it)."""
    event: dict[str, Any] = {"event_action": action, "dedup_key": dedup_key(ctx, incident)}
    if action == "trigger":
        severity = ctx.config.severity(incident.severity)
        summary = f"INC-{incident.number} [{severity.name}] {incident.summary}"
        details = {"launch": ctx.launch.name, "role": role, "paged_user": user, "owner": incident.owner,
                   "impact": incident.impact or None, "declared_at": incident.declared_at.isoformat()  # type: ignore[union-attr]
                   }
        event["payload"] = {"summary": summary[:MAX_SUMMARY], "severity": PAGE_SEVERITY[incident.severity],
                            "source": "warroom", "custom_details": {k: v for k, v in details.items() if v}}
    return event


def queue_event(ctx: Context, incident: Incident, action: str, *, role: str | None = None, why: str) -> bool:
    """Queue one event in the caller's transaction. False when paging is not configured, or when an
    acknowledge or resolve would be about an incident PagerDuty never heard of."""
    if ctx.config.paging.pagerduty is None:
        return False
    if action != "trigger" and not was_triggered(ctx, incident):
        return False
    assert ctx.launch.id is not None and incident.id is not None
    user = role_holder(ctx.session, ctx.launch.id, role) if role else None
    event = event_for(ctx, incident, action, role, user)
    if ctx.rehearsal:  # a rehearsal wakes nobody: it says what it would have sent
        record(ctx, "incident.page_rehearsed", incident_id=incident.id, number=incident.number, action=action,
               role=role, user=user, why=why, dedup_key=event["dedup_key"])
        thread(ctx, incident, "pagerduty_rehearsed", "incident.page", action=action, role=role, user=user)
        return True
    ctx.session.add(Timer(launch_id=ctx.launch.id, kind=PAGE_KIND, subject_id=incident.id, due_at=ctx.now,
                          created_at=ctx.now, payload={"claims": 0, "event": event, "role": role, "user": user,
                                                       "why": why}))
    record(ctx, "incident.page_queued", incident_id=incident.id, number=incident.number, action=action, role=role,
           user=user, why=why, dedup_key=event["dedup_key"])
    return True


def page_on_escalation(ctx: Context, incident: Incident, role: str | None) -> None:
    """commands/escalation.py's hook: the first escalation that reaches a page role triggers."""
    if role in ctx.config.paging.page_roles and not was_triggered(ctx, incident):
        queue_event(ctx, incident, "trigger", role=role, why="escalation")


def page_now(ctx: Context, incident: Incident, role_word: str) -> Result:
    """`/incident page INC-7 [role]`: the owner or the commander triggers a page now."""
    if ctx.config.paging.pagerduty is None:
        raise CommandError(reply("paging.not_configured"))
    require_open(incident, "paged")
    require_owner_or_commander(ctx, incident, "/incident page")
    assert ctx.launch.id is not None
    held = held_roles(ctx.session, ctx.launch.id)
    role = role_word.strip().lower() or next((r for r in ctx.config.paging.page_roles if held.get(r)), None)
    if role_word and role not in held and role not in ctx.config.roles and role not in STANDARD_ROLES:
        raise CommandError(reply("paging.not_a_role", word=role_word), reply("paging.usage"))
    queue_event(ctx, incident, "trigger", role=role, why=f"paged by {ctx.user}")
    return Result(reply=reply("paging.queued", incident=incident, role=role, user=held.get(role) if role else None))


# -- claimed, sent and recorded by the edge (bot/pagerduty.py) -----------------------------------------------


@dataclass(frozen=True)
class PageClaim:
    lease: Lease
    event: dict[str, Any]


def claim_page(ctx: Context, timer_id: int, lease: timedelta) -> PageClaim | None:
    taken = claim_due(ctx, timer_id, PAGE_KIND, lease, in_order=True)
    return PageClaim(taken, dict(taken.payload["event"])) if taken is not None else None


def record_page(ctx: Context, claim: PageClaim, outcome: CallOutcome) -> None:
    """What PagerDuty answered: on the incident's timeline, and in its thread (a failure in the war room too)."""
    incident = ctx.session.get(Incident, claim.lease.subject_id)
    assert incident is not None
    action, role = claim.event["event_action"], claim.lease.payload.get("role")
    facts = {"number": incident.number, "action": action, "role": role, "dedup_key": claim.event["dedup_key"],
             "status": outcome.status, "error": outcome.error, "attempts": outcome.attempts, "claim": claim.lease.claim}
    values = {"action": action, "role": role, "user": claim.lease.payload.get("user"), "outcome": outcome,
              "detail": pagerduty_detail(outcome)}
    if not outcome.ok and outcome.retry and claim.lease.claim < MAX_CLAIMS:
        wait = backoff(claim.lease.claim)
        if retry_later(ctx, claim.lease.timer_id, outcome, wait) is None:
            return
        record(ctx, "incident.page_retrying", incident_id=incident.id, retry_in_s=wait.total_seconds(), **facts)
        if claim.lease.claim == 1:  # said once; the next answer (sent or failed) is posted too
            thread(ctx, incident, "pagerduty_retrying", "incident.page", wait=wait, **values)
        return
    if finish_due(ctx, claim.lease.timer_id, outcome) is None:  # sent twice after a lost lease: one dedup_key
        record(ctx, "incident.page_duplicate", incident_id=incident.id, **facts)
        return
    if outcome.ok:
        record(ctx, "incident.paged", incident_id=incident.id, **facts)
        thread(ctx, incident, "pagerduty_sent", "incident.page", **values)
        return
    record(ctx, "incident.page_failed", incident_id=incident.id, **facts)
    thread(ctx, incident, "pagerduty_failed", "incident.page_failed", broadcast=True, urgent=True,
           commander=role_holder(ctx.session, ctx.launch.id, "commander"), **values)


def pagerduty_detail(outcome: CallOutcome) -> str:
    """PagerDuty's own words for a refused event (`message` and `errors`), clipped."""
    words = [str(outcome.body.get("message") or "")]
    errors = outcome.body.get("errors")
    if isinstance(errors, list):
        words += [str(e) for e in errors[:3]]
    return "; ".join(w for w in words if w)[:300]
