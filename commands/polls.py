"""`/gonogo` and `/signoff`: a poll of role holders, shown live, closed into one decision.

The commander opens a poll; the message lists the criteria (go/no-go: `gonogo.criteria`, seed 001) or
each role's duty (sign-off: seed 000 §11) and one line per required role: who holds it, their vote and
reason, or that it is missing. Holders vote with the buttons (`gonogo_vote`: go/nogo; `signoff_vote`:
accepted/rollback) or with a reason by typing `/gonogo go <reason>`, `/gonogo nogo <reason>`,
`/signoff accepted <reason>`, `/signoff rollback <reason>`. A person holding several required roles votes
for each. Votes may change until the poll closes; every vote and change is audited. The poll closes by
itself when every required role has voted (or early with `/gonogo close` by the commander, missing votes
counting against): GO / "launch accepted" only when every required role voted go / accepted. The outcome
with each vote is one Decision (kind `gonogo` or `signoff`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from commands.authority import locked_launch
from commands.clicks import clicked_id
from commands.config import Config
from commands.context import Context, Result, post, record, role_holder
from commands.decision import log_decision
from commands.errors import CommandError
from commands.readiness import critical_gates
from commands.registry import action, slash
from commands.render import reply
from commands.roles import require_commander, require_role
from db.models import Poll, Vote

MAX_REASON = 300
SIGNOFF_DUTIES = {  # seed 000 §11
    "commander": "confirms all checklists are complete",
    "eng_oncall": "verifies system metrics are within thresholds",
    "cx": "confirms CX workflows are stable",
    "exec": "gives the final decision from the incident summary",
}


@dataclass(frozen=True)
class PollKind:
    kind: str
    command: str
    title: str
    action_id: str
    yes: str
    no: str
    yes_label: str
    no_label: str
    yes_outcome: str
    no_outcome: str

    @property
    def usage(self) -> str:
        return reply("polls.usage", spec=self)

    def roles(self, config: Config) -> list[str]:
        return list(config.gonogo_roles if self.kind == "gonogo" else config.signoff_roles)

    def criteria(self, config: Config) -> list[str]:
        if self.kind == "gonogo":
            return list(config.gonogo_criteria)
        return [f"{role}: {SIGNOFF_DUTIES[role]}" for role in config.signoff_roles if role in SIGNOFF_DUTIES]


GONOGO = PollKind("gonogo", "/gonogo", "Go/No-Go", "gonogo_vote", "go", "nogo", "Go", "No-go", "GO", "NO-GO")
SIGNOFF = PollKind("signoff", "/signoff", "Launch sign-off", "signoff_vote", "accepted", "rollback",
                   "Accept launch", "Call for rollback", "launch accepted", "rollback called for")
CHOICE_WORDS = {"go": "go", "nogo": "nogo", "no-go": "nogo", "no_go": "nogo",
                "accepted": "accepted", "accept": "accepted", "rollback": "rollback"}


def poll_ref(poll: Poll) -> str:
    return f"poll:{poll.id}"


def open_poll(ctx: Context, spec: PollKind, *, lock: bool = False) -> Poll | None:
    query = select(Poll).where(Poll.launch_id == ctx.launch.id, Poll.kind == spec.kind,
                               Poll.closed_at.is_(None)).order_by(Poll.id.desc())  # type: ignore[union-attr]
    return ctx.session.exec(query.with_for_update(key_share=True) if lock else query).first()


def votes_of(ctx: Context, poll: Poll) -> dict[str, Vote]:
    return {v.role: v for v in ctx.session.exec(select(Vote).where(Vote.poll_id == poll.id)).all()}


def poll_values(ctx: Context, spec: PollKind, poll: Poll) -> dict[str, object]:
    votes = votes_of(ctx, poll)
    lines = [{"role": role, "holder": role_holder(ctx.session, ctx.launch.id, role), "vote": votes.get(role)}
             for role in poll.roles]
    return {"spec": spec, "poll": poll, "lines": lines, "missing": [line for line in lines if not line["vote"]],
            "readiness": critical_gates(ctx) if spec.kind == "gonogo" else []}  # each critical gate and its state


def start(ctx: Context, spec: PollKind) -> Result:
    require_commander(ctx, spec.command)
    locked_launch(ctx)
    existing = open_poll(ctx, spec)
    if existing is not None:
        return Result(reply=reply("polls.already_open", spec=spec, poll=existing,
                                  missing=poll_values(ctx, spec, existing)["missing"], tz=ctx.tz))
    roles = spec.roles(ctx.config)
    poll = Poll(launch_id=ctx.launch.id, kind=spec.kind, opened_by=ctx.user, opened_at=ctx.now, roles=roles,
                criteria=spec.criteria(ctx.config))
    ctx.session.add(poll)
    ctx.session.flush()
    record(ctx, "poll.opened", poll_id=poll.id, poll_kind=spec.kind, roles=roles)
    post(ctx, ctx.launch.war_room, "poll", kind=f"{spec.kind}.poll", ref=poll_ref(poll),
         **poll_values(ctx, spec, poll))
    return Result(reply=reply("polls.started", spec=spec))


def target_poll(ctx: Context, spec: PollKind) -> Poll:
    """The poll whose message was clicked, else the open poll of this kind (locked)."""
    poll_id = clicked_id(ctx, "poll")
    if poll_id is None:
        poll = open_poll(ctx, spec, lock=True)
    else:
        poll = ctx.session.exec(select(Poll).where(Poll.id == poll_id, Poll.launch_id == ctx.launch.id,
                                                   Poll.kind == spec.kind).with_for_update(key_share=True)).first()
    if poll is None:
        raise CommandError(reply("polls.none_open", spec=spec))
    if poll.closed_at is not None:
        raise CommandError(reply("polls.closed", spec=spec, poll=poll, tz=ctx.tz))
    return poll


def vote(ctx: Context, spec: PollKind, choice: str, reason: str, via: str) -> Result:
    if len(reason) > MAX_REASON:
        raise CommandError(reply("polls.reason_too_long", length=len(reason), limit=MAX_REASON), spec.usage)
    poll = target_poll(ctx, spec)
    held = require_role(ctx, poll.roles, via)
    votes = votes_of(ctx, poll)
    changed: list[str] = []
    for role in held:
        current = votes.get(role)
        if current is None:
            ctx.session.add(Vote(poll_id=poll.id, role=role, user_id=ctx.user, choice=choice, reason=reason,
                                 cast_at=ctx.now))
            record(ctx, "poll.voted", poll_id=poll.id, poll_kind=spec.kind, role=role, choice=choice, reason=reason)
        elif current.choice != choice or (reason and reason != current.reason) or current.user_id != ctx.user:
            before = {"choice": current.choice, "reason": current.reason, "user": current.user_id}
            current.user_id, current.choice, current.cast_at = ctx.user, choice, ctx.now
            current.reason = reason if (reason or before["choice"] != choice) else current.reason
            ctx.session.add(current)
            record(ctx, "poll.vote_changed", poll_id=poll.id, poll_kind=spec.kind, role=role, before=before,
                   choice=choice, reason=current.reason)
        else:
            continue
        changed.append(role)
    if not changed:
        return Result(reply=reply("polls.voted_the_same", choice=choice, roles=held))
    ctx.session.flush()
    values = poll_values(ctx, spec, poll)
    if not values["missing"]:
        return close(ctx, spec, poll, closed_by="vote")
    post(ctx, ctx.launch.war_room, "poll", kind=f"{spec.kind}.poll_update", update_ref=poll_ref(poll), **values)
    return Result(reply=reply("polls.voted", choice=choice, roles=changed))


def close(ctx: Context, spec: PollKind, poll: Poll, *, closed_by: str) -> Result:
    votes = votes_of(ctx, poll)
    accepted = all(votes.get(role) is not None and votes[role].choice == spec.yes for role in poll.roles)
    # a critical readiness gate not ready holds the go/no-go at NO-GO, whatever the votes
    held = [g["item"] for g in critical_gates(ctx) if g["item"].state != "ready"] if spec.kind == "gonogo" else []
    accepted = accepted and not held
    poll.outcome = spec.yes_outcome if accepted else spec.no_outcome
    poll.closed_at = ctx.now
    ctx.session.add(poll)
    listed = [{"role": role, "user": votes[role].user_id if role in votes else None,
               "choice": votes[role].choice if role in votes else "missing",
               "reason": votes[role].reason if role in votes else ""} for role in poll.roles]
    text = poll.outcome + ": " + "; ".join(
        f"{v['role']} {v['user'] or '-'} {v['choice']}" + (f" ({v['reason']})" if v["reason"] else "") for v in listed)
    if held:
        text += "; held back by readiness not ready: " + ", ".join(f"{i.key} ({i.state})" for i in held)
    log_decision(ctx, spec.kind, text, poll_id=poll.id, outcome=poll.outcome, votes=listed, closed_by=closed_by,
                 held_by=[i.key for i in held])
    record(ctx, "poll.closed", poll_id=poll.id, poll_kind=spec.kind, outcome=poll.outcome, closed_by=closed_by,
           held_by=[i.key for i in held])
    values = poll_values(ctx, spec, poll)
    post(ctx, ctx.launch.war_room, "poll", kind=f"{spec.kind}.poll_update", update_ref=poll_ref(poll), **values)
    post(ctx, ctx.launch.war_room, "poll_result", kind=f"{spec.kind}.result", accepted=accepted, **values)
    return Result(reply=reply("polls.closed", spec=spec, poll=poll, tz=ctx.tz))


def command(ctx: Context, spec: PollKind, text: str) -> Result:
    words = text.split(None, 1)
    if not words:
        return start(ctx, spec)
    verb, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    if verb == "close" and not rest:
        require_commander(ctx, f"{spec.command} close")
        poll = open_poll(ctx, spec, lock=True)
        if poll is None:
            raise CommandError(reply("polls.none_open", spec=spec))
        return close(ctx, spec, poll, closed_by="commander")
    choice = CHOICE_WORDS.get(verb)
    if choice not in (spec.yes, spec.no):
        raise CommandError(reply("polls.not_a_vote", word=verb, spec=spec), spec.usage)
    return vote(ctx, spec, choice, " ".join(rest.split()), f"{spec.command} {choice}")


def button(ctx: Context, spec: PollKind, value: str) -> Result:
    choice = value.strip().lower()
    if choice not in (spec.yes, spec.no):
        raise CommandError(reply("common.unknown_button_value"))
    return vote(ctx, spec, choice, "", spec.action_id)


@slash("/gonogo", usage=GONOGO.usage, summary="go/no-go poll of the required roles (commander starts; holders vote)")
def gonogo_command(ctx: Context, text: str) -> Result:
    return command(ctx, GONOGO, text)


@slash("/signoff", usage=SIGNOFF.usage, summary="launch sign-off: each sign-off role accepts or calls for rollback")
def signoff_command(ctx: Context, text: str) -> Result:
    return command(ctx, SIGNOFF, text)


@action("gonogo_vote")
def gonogo_button(ctx: Context, value: str) -> Result:
    return button(ctx, GONOGO, value)


@action("signoff_vote")
def signoff_button(ctx: Context, value: str) -> Result:
    return button(ctx, SIGNOFF, value)
