"""What every command gets (Context) and gives back (Result), and the helpers they share:
recording audit events, queueing messages in the outbox, reading roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlmodel import Session, select

from commands.config import Config
from commands.render import TEMPLATES, render, render_blocks, verbatim
from db.models import Activity, AuditEvent, Launch, OutboxMessage, RoleAssignment
from db.session import hold_channel


@dataclass
class Context:
    session: Session
    now: datetime
    config: Config
    user: str
    launch: Launch
    channel: str | None = None
    message_ts: str | None = None  # the message whose button was clicked (None for commands and the shell)

    @property
    def tz(self) -> str:
        return self.launch.timezone

    @property
    def rehearsal(self) -> bool:
        return self.launch.rehearsal


@dataclass
class Result:
    """What the actor sees (ephemeral) and, for `/incident` alone, a modal to open."""

    reply: str | None = None
    modal: dict[str, Any] | None = None
    view_errors: dict[str, str] | None = None
    blocks: list[dict[str, Any]] | None = field(default=None)


def record(ctx: Context, kind: str, *, incident_id: int | None = None, actor: str | None = None,
           **payload: Any) -> None:
    """One row of the audit trail (an incident's timeline is its events)."""
    ctx.session.add(AuditEvent(launch_id=ctx.launch.id, incident_id=incident_id, kind=kind,
                               actor=actor or ctx.user, ts=ctx.now, payload=payload))


def note_activity(ctx: Context, source: str = "command") -> None:
    if ctx.user and ctx.user[0] in "UW":
        ctx.session.add(Activity(launch_id=ctx.launch.id, user_id=ctx.user, at=ctx.now, source=source))


@cache
def has_blocks(template: str) -> bool:
    return (Path(TEMPLATES) / f"{template}.json.j2").exists()


def compose(template: str, **values: Any) -> dict[str, Any]:
    """Render `template.j2` (text) and, when it exists, `template.json.j2` (blocks).

    A blocks template gets the rendered text as `text` and `part(name)` to render
    another text template with the same values: every piece of user text is escaped
    once, by the text templates, and passed to JSON as it is.
    """
    text = render(f"{template}.j2", **values)
    payload: dict[str, Any] = {"text": text}
    if has_blocks(template):
        def part(name: str) -> Markup:
            return Markup(render(f"{name}.j2", **values))

        payload["blocks"] = verbatim(render_blocks(f"{template}.json.j2", text=Markup(text), part=part, **values))
    return payload


def post(ctx: Context, channel: str, template: str, *, kind: str | None = None, ref: str | None = None,
         thread_ref: str | None = None, update_ref: str | None = None, arms_timer_id: int | None = None,
         broadcast: bool = False, urgent: bool = False, **values: Any) -> None:
    """Queue a message in the outbox, in the caller's transaction. Rehearsal messages say so.
    `broadcast`: a thread reply that also shows in the channel (Slack's reply_broadcast).
    `urgent`: it goes before the channel's routine messages (a new sev1/sev2, an escalation, a rollback)."""
    with_context(ctx, values)
    payload = compose(template, **values)
    if broadcast:
        payload["reply_broadcast"] = True
    if not update_ref:  # no link previews of whatever URL user text holds
        payload.update(unfurl_links=False, unfurl_media=False)
    if ctx.rehearsal:
        payload["text"] = "[REHEARSAL] " + payload["text"]
        if payload.get("blocks"):
            payload["blocks"].insert(0, {"type": "context", "elements": [{"type": "mrkdwn", "text": "[REHEARSAL]"}]})
    queue(
        ctx, channel, kind=kind or template, method="chat.update" if update_ref else "chat.postMessage",
        payload=payload, ref=ref, thread_ref=thread_ref, update_ref=update_ref,
        arms_timer_id=arms_timer_id, urgent=urgent,
    )


def with_context(ctx: Context, values: dict[str, Any]) -> None:
    """What every message template may use besides its own values."""
    values.setdefault("tz", ctx.tz)
    values.setdefault("now", ctx.now)
    values.setdefault("launch", ctx.launch)
    values.setdefault("actor", ctx.user)


def queue(ctx: Context, channel: str, *, urgent: bool = False, **row: Any) -> None:
    """One outbox row for the channel, in the caller's transaction, in the channel's order (db/session.py
    hold_channel); an urgent one goes before the channel's routine rows (bot/outbox_order.py)."""
    hold_channel(ctx.session.connection(), channel)
    ctx.session.add(OutboxMessage(launch_id=ctx.launch.id, channel=channel, created_at=ctx.now, urgent=urgent,
                                  **row))


def role_holder(session: Session, launch_id: int, role: str) -> str | None:
    return held_roles(session, launch_id).get(role)


def held_roles(session: Session, launch_id: int) -> dict[str, str | None]:
    """Every role ever set for the launch -> its current holder (the newest assignment wins)."""
    rows = session.exec(select(RoleAssignment.role, RoleAssignment.user_id)
                        .where(RoleAssignment.launch_id == launch_id).order_by(RoleAssignment.id))  # type: ignore[arg-type]
    return dict(rows.all())


def roster(session: Session, launch_id: int) -> dict[str, str | None]:
    """Every role that has ever been set for the launch -> its current holder, by role name."""
    return dict(sorted(held_roles(session, launch_id).items()))


def roles_of(session: Session, launch_id: int, user: str) -> list[str]:
    return [role for role, holder in roster(session, launch_id).items() if holder == user]


def upload(ctx: Context, channel: str, filename: str, build: dict[str, Any], template: str, *,
           kind: str = "export.file", **values: Any) -> None:
    """Queue a file for the channel (outbox method `files.upload`); its title and comment come from a template.
    The row keeps what to build (`build`), not the file: the outbox builds it when it sends it
    (bot/exporting.py `ExportBuilder`), so a queued export is small and shows the record as it is then."""
    with_context(ctx, values)
    comment = render(f"{template}.j2", **values)
    if ctx.rehearsal:
        comment = "[REHEARSAL] " + comment
        filename = "rehearsal-" + filename
    queue(ctx, channel, kind=kind, method="files.upload",
          payload={"filename": filename, "title": filename, "build": build, "initial_comment": comment})
