"""What every command gets (Context) and gives back (Result), and the helpers they share:
recording audit events, queueing messages in the outbox, reading roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy import func
from sqlmodel import Session, select

from bot.config import Config
from commands.render import TEMPLATES, render, render_blocks
from db.models import Activity, AuditEvent, Launch, OutboxMessage, RoleAssignment


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
           **payload: Any) -> AuditEvent:
    """One row of the audit trail (an incident's timeline is its events)."""
    event = AuditEvent(launch_id=ctx.launch.id, incident_id=incident_id, kind=kind,
                       actor=actor or ctx.user, ts=ctx.now, payload=payload)
    ctx.session.add(event)
    return event


def note_activity(ctx: Context, source: str = "command") -> None:
    if ctx.user and ctx.user[0] in "UW":
        ctx.session.add(Activity(launch_id=ctx.launch.id, user_id=ctx.user, at=ctx.now, source=source))


def compose(template: str, **values: Any) -> dict[str, Any]:
    """Render `template.j2` (text) and, when it exists, `template.json.j2` (blocks).

    A blocks template gets the rendered text as `text` and `part(name)` to render
    another text template with the same values: every piece of user text is escaped
    once, by the text templates, and passed to JSON as it is.
    """
    text = render(f"{template}.j2", **values)
    payload: dict[str, Any] = {"text": text}
    if (Path(TEMPLATES) / f"{template}.json.j2").exists():
        def part(name: str) -> Markup:
            return Markup(render(f"{name}.j2", **values))

        payload["blocks"] = render_blocks(f"{template}.json.j2", text=Markup(text), part=part, **values)
    return payload


def post(ctx: Context, channel: str, template: str, *, kind: str | None = None, ref: str | None = None,
         thread_ref: str | None = None, update_ref: str | None = None, arms_timer_id: int | None = None,
         broadcast: bool = False, **values: Any) -> OutboxMessage:
    """Queue a message in the outbox, in the caller's transaction. Rehearsal messages say so.
    `broadcast`: a thread reply that also shows in the channel (Slack's reply_broadcast)."""
    values.setdefault("tz", ctx.tz)
    values.setdefault("now", ctx.now)
    values.setdefault("launch", ctx.launch)
    values.setdefault("actor", ctx.user)
    payload = compose(template, **values)
    if broadcast:
        payload["reply_broadcast"] = True
    if ctx.rehearsal:
        payload["text"] = "[REHEARSAL] " + payload["text"]
        if payload.get("blocks"):
            payload["blocks"].insert(0, {"type": "context", "elements": [{"type": "mrkdwn", "text": "[REHEARSAL]"}]})
    message = OutboxMessage(
        launch_id=ctx.launch.id, kind=kind or template, channel=channel,
        method="chat.update" if update_ref else "chat.postMessage",
        payload=payload, ref=ref, thread_ref=thread_ref, update_ref=update_ref,
        arms_timer_id=arms_timer_id, created_at=ctx.now, next_attempt_at=None,
    )
    ctx.session.add(message)
    ctx.session.flush()
    return message


def role_holder(session: Session, launch_id: int, role: str) -> str | None:
    row = session.exec(
        select(RoleAssignment).where(RoleAssignment.launch_id == launch_id, RoleAssignment.role == role)
        .order_by(RoleAssignment.id.desc()).limit(1)  # type: ignore[union-attr]
    ).first()
    return row.user_id if row else None


def roster(session: Session, launch_id: int) -> dict[str, str | None]:
    """Every role that has ever been set for the launch -> its current holder."""
    newest = (select(RoleAssignment.role, func.max(RoleAssignment.id).label("id"))
              .where(RoleAssignment.launch_id == launch_id).group_by(RoleAssignment.role).subquery())
    rows = session.exec(select(RoleAssignment).join(newest, RoleAssignment.id == newest.c.id)).all()
    return {row.role: row.user_id for row in sorted(rows, key=lambda r: r.role)}


def roles_of(session: Session, launch_id: int, user: str) -> list[str]:
    return [role for role, holder in roster(session, launch_id).items() if holder == user]


def upload(ctx: Context, channel: str, filename: str, content: str, template: str, *, kind: str = "export.file",
           **values: Any) -> OutboxMessage:
    """Queue a file for the channel (outbox method `files.upload`); its title and comment come from a template."""
    values.setdefault("tz", ctx.tz)
    values.setdefault("now", ctx.now)
    values.setdefault("launch", ctx.launch)
    values.setdefault("actor", ctx.user)
    comment = render(f"{template}.j2", **values)
    if ctx.rehearsal:
        comment = "[REHEARSAL] " + comment
        filename = "rehearsal-" + filename
    message = OutboxMessage(
        launch_id=ctx.launch.id, kind=kind, channel=channel, method="files.upload",
        payload={"filename": filename, "title": filename, "content": content, "initial_comment": comment},
        created_at=ctx.now, next_attempt_at=None,
    )
    ctx.session.add(message)
    ctx.session.flush()
    return message
