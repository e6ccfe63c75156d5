"""`/statuspage INC-7 <investigating|identified|monitoring|resolved> <public text>`: the public status page.

The commander or a `cx` holder asks; nothing public is sent yet: the public text is posted in the
incident's thread with `statuspage_confirm` / `statuspage_cancel` buttons (value: the pending update's
id). On confirm (the commander or a `cx` holder), a `statuspage_update` Timer is queued; the edge
(bot/statuspage.py) claims it with a lease and calls Atlassian Statuspage outside any transaction: the
incident's first update creates the page incident (`POST /pages/<page_id>/incidents`), later ones update
it (`PATCH …/incidents/<id>`), in order. Each outcome is stored, on the incident's timeline, and posted in
its thread. A 429, a 5xx or no answer is tried again later; Statuspage's API has no idempotency key, so a create
whose answer was lost is looked for by its name before it is made again (bot/statuspage.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import select

from commands.context import Context, Result, record, role_holder
from commands.errors import CommandError, Refused
from commands.incident import load, thread
from commands.leases import CallOutcome, Lease, backoff, claim_due, finish_due, retry_later
from commands.registry import action, slash
from commands.render import reply
from db.beyond import StatusPageUpdate
from db.models import Incident, Timer

USAGE = reply("statuspage.usage")
UPDATE_KIND = "statuspage_update"
STATUSES = ("investigating", "identified", "monitoring", "resolved")
MAX_PUBLIC = 1000
MAX_NAME = 120
MAX_CLAIMS = 12
_SLACK_MARKUP = re.compile(r"<[@!#]")  # a mention, a channel or <!here>: Slack markup, meaningless to the public


def update_ref(update: StatusPageUpdate) -> str:
    return f"statuspage:{update.id}"


def require_publisher(ctx: Context, what: str) -> None:
    assert ctx.launch.id is not None
    commander = role_holder(ctx.session, ctx.launch.id, "commander")
    cx = role_holder(ctx.session, ctx.launch.id, "cx")
    if ctx.user not in (commander, cx):
        raise Refused(reply("statuspage.only_commander_or_cx", commander=commander, cx=cx), what)


@slash("/statuspage", usage=USAGE, summary="update the public status page for an incident, after a confirmation (commander, cx)")
def statuspage_command(ctx: Context, text: str) -> Result:
    words = text.split(None, 2)
    if len(words) < 3:
        raise CommandError(reply("statuspage.needs_all"), USAGE)
    id_token, status, body = words[0], words[1].lower(), " ".join(words[2].split())
    if status not in STATUSES:
        raise CommandError(reply("statuspage.not_a_status", word=words[1]), USAGE)
    if len(body) > MAX_PUBLIC:
        raise CommandError(reply("statuspage.too_long", length=len(body), limit=MAX_PUBLIC), USAGE)
    if _SLACK_MARKUP.search(body):
        raise CommandError(reply("statuspage.no_slack_markup"), USAGE)
    if ctx.config.status_page.statuspage is None:
        raise CommandError(reply("statuspage.not_configured"))
    if ctx.rehearsal:  # customers see the public page: a rehearsal never writes to it
        raise CommandError(reply("statuspage.not_in_a_rehearsal"))
    require_publisher(ctx, "/statuspage")
    incident = load(ctx, id_token, USAGE)
    assert ctx.launch.id is not None and incident.id is not None
    update = StatusPageUpdate(launch_id=ctx.launch.id, incident_id=incident.id, status=status, body=body,
                              requested_by=ctx.user, requested_at=ctx.now)
    ctx.session.add(update)
    ctx.session.flush()
    record(ctx, "incident.status_page_requested", incident_id=incident.id, number=incident.number, update_id=update.id,
           status=status, text=body)
    thread(ctx, incident, "statuspage_confirmation", "statuspage.confirmation", ref=update_ref(update), update=update)
    return Result(reply=reply("statuspage.waiting", incident=incident))


def load_update(ctx: Context, value: str) -> tuple[StatusPageUpdate, Incident]:
    if not value.strip().isdigit():
        raise CommandError(reply("common.unknown_button_value"))
    update = ctx.session.exec(select(StatusPageUpdate).where(
        StatusPageUpdate.id == int(value), StatusPageUpdate.launch_id == ctx.launch.id).with_for_update()).first()
    if update is None:
        raise CommandError(reply("statuspage.not_of_this_launch"))
    return update, ctx.session.get_one(Incident, update.incident_id)


def decide(ctx: Context, value: str, what: str, state: str) -> tuple[StatusPageUpdate, Incident] | Result:
    """The pending update, decided (confirmed or cancelled) by this click; a Result when it was decided before."""
    update, incident = load_update(ctx, value)
    if update.state != "pending":
        return Result(reply=reply("statuspage.already_decided", update=update, tz=ctx.tz))
    require_publisher(ctx, what)
    update.state, update.decided_by, update.decided_at = state, ctx.user, ctx.now
    ctx.session.add(update)
    record(ctx, f"incident.status_page_{state}", incident_id=incident.id, number=incident.number, update_id=update.id,
           status=update.status, text=update.body)
    post_decided(ctx, incident, update)
    return update, incident


def post_decided(ctx: Context, incident: Incident, update: StatusPageUpdate) -> None:
    thread(ctx, incident, "statuspage_confirmation", "statuspage.confirmation_update", update_ref=update_ref(update),
           update=update)


@action("statuspage_confirm")
def confirm_button(ctx: Context, value: str) -> Result:
    decided = decide(ctx, value, "statuspage confirmation", "confirmed")
    if isinstance(decided, Result):
        return decided
    update, incident = decided
    assert ctx.launch.id is not None
    ctx.session.add(Timer(launch_id=ctx.launch.id, kind=UPDATE_KIND, subject_id=incident.id, due_at=ctx.now,
                          created_at=ctx.now, payload={"claims": 0, "update_id": update.id}))
    return Result(reply=reply("statuspage.confirmed", incident=incident))


@action("statuspage_cancel")
def cancel_button(ctx: Context, value: str) -> Result:
    decided = decide(ctx, value, "statuspage cancel", "cancelled")
    return decided if isinstance(decided, Result) else Result(reply=reply("statuspage.cancelled"))


# -- claimed, sent and recorded by the edge (bot/statuspage.py) ----------------------------------------------


@dataclass(frozen=True)
class StatusClaim:
    lease: Lease
    update_id: int
    page_incident_id: str | None  # None: this update creates the page incident
    body: dict[str, Any]


def claim_status_update(ctx: Context, timer_id: int, lease: timedelta) -> StatusClaim | None:
    taken = claim_due(ctx, timer_id, UPDATE_KIND, lease, in_order=True)
    if taken is None:
        return None
    update = ctx.session.get_one(StatusPageUpdate, int(taken.payload["update_id"]))
    page_incident_id = ctx.session.exec(
        select(StatusPageUpdate.page_incident_id).where(
            StatusPageUpdate.incident_id == update.incident_id, StatusPageUpdate.state == "sent",
            StatusPageUpdate.page_incident_id.is_not(None))  # type: ignore[union-attr]
        .order_by(StatusPageUpdate.id.desc())  # type: ignore[union-attr]
    ).first()
    fields: dict[str, Any] = {"status": update.status, "body": update.body}
    if page_incident_id is None:
        fields["name"] = update.body[:MAX_NAME]
    return StatusClaim(taken, update.id or 0, page_incident_id, {"incident": fields})


def record_status_update(ctx: Context, claim: StatusClaim, outcome: CallOutcome) -> None:
    """What Statuspage answered: stored on the update, on the incident's timeline and in its thread."""
    update = ctx.session.get_one(StatusPageUpdate, claim.update_id)
    incident = ctx.session.get_one(Incident, update.incident_id)
    facts = {"number": incident.number, "update_id": update.id, "status": update.status, "http_status": outcome.status,
             "error": outcome.error, "attempts": outcome.attempts, "created": claim.page_incident_id is None}
    if not outcome.ok and outcome.retry and claim.lease.claim < MAX_CLAIMS:
        wait = backoff(claim.lease.claim)
        if retry_later(ctx, claim.lease.timer_id, outcome, wait) is not None:
            record(ctx, "incident.status_page_retrying", incident_id=incident.id, retry_in_s=wait.total_seconds(), **facts)
            if claim.lease.claim == 1:
                thread(ctx, incident, "statuspage_retrying", "statuspage.result", update=update, outcome=outcome,
                       wait=wait)
        return
    if finish_due(ctx, claim.lease.timer_id, outcome) is None:
        record(ctx, "incident.status_page_duplicate", incident_id=incident.id, **facts)
        return
    if outcome.ok:
        returned = outcome.body.get("id")
        update.page_incident_id = claim.page_incident_id or (str(returned)[:64] if returned else None)
        update.state, update.sent_at = "sent", ctx.now
        ctx.session.add(update)
        link = outcome.body.get("shortlink")
        record(ctx, "incident.status_page_sent", incident_id=incident.id, page_incident_id=update.page_incident_id,
               text=update.body, **facts)
        thread(ctx, incident, "statuspage_sent", "statuspage.result", update=update,
               link=link if isinstance(link, str) and link.startswith("https://") else None)
        return
    update.state, update.error = "failed", (f"HTTP {outcome.status}" if outcome.status else outcome.error or "")[:300]
    ctx.session.add(update)
    record(ctx, "incident.status_page_failed", incident_id=incident.id, **facts)
    api = ctx.config.status_page.statuspage
    thread(ctx, incident, "statuspage_failed", "statuspage.result", broadcast=True, urgent=True, update=update,
           outcome=outcome, key_env=api.api_key_env if api else None,
           cx=role_holder(ctx.session, ctx.launch.id, "cx"))

