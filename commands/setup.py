"""The launch row behind every command: created from the config on first use."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from commands.config import Config
from commands.readiness import seed_readiness
from db.models import Launch, RoleAssignment, Timer


def ensure_launch(session: Session, config: Config, now: datetime, *, rehearsal: bool = False,
                  name: str | None = None) -> Launch:
    """The launch named in the config (or `name`), created with its roles and run-of-show on first use."""
    name = name or config.launch_name
    launch = session.exec(select(Launch).where(Launch.name == name)).first()
    if launch is not None:
        return launch
    launch = Launch(
        name=name, war_room=config.war_room, timezone=config.timezone, t0=config.t0,
        heartbeat_every_s=int(config.heartbeat_every.total_seconds()), rehearsal=rehearsal, created_at=now,
    )
    session.add(launch)
    session.flush()
    assert launch.id is not None
    for role, user in config.roles.items():
        session.add(RoleAssignment(launch_id=launch.id, role=role, user_id=user, assigned_by="config", assigned_at=now))
    schedule_run_of_show(session, launch, config, now)
    seed_readiness(session, launch, config, now)  # the config's readiness gates and their timers
    return launch


def launch_for_channel(session: Session, config: Config, channel: str | None, now: datetime) -> Launch:
    """The configured launch, unless the command came from another launch's war room.

    A process (the live bot, a rehearsal) acts on the launch its config names; a
    channel that is the war room of a different launch selects that launch.
    """
    configured = ensure_launch(session, config, now)
    if not channel or channel == configured.war_room:
        return configured
    other = session.exec(select(Launch).where(Launch.war_room == channel, Launch.rehearsal == configured.rehearsal)
                         .order_by(Launch.id)).first()
    return other or configured


def schedule_run_of_show(session: Session, launch: Launch, config: Config, now: datetime) -> None:
    """One `mark` timer per run-of-show entry (and T0's announcement), relative to T0.

    Marks already posted keep their record; marks not yet posted move with T0.
    """
    assert launch.id is not None
    pending = session.exec(
        select(Timer).where(Timer.launch_id == launch.id, Timer.kind == "mark", Timer.done_at.is_(None))  # type: ignore[union-attr]
    ).all()
    for timer in pending:
        session.delete(timer)
    if launch.t0 is None:
        return
    posted = {
        t.payload.get("label")
        for t in session.exec(
            select(Timer).where(Timer.launch_id == launch.id, Timer.kind == "mark", Timer.done_at.is_not(None))  # type: ignore[union-attr]
        ).all()
    }
    marks = [(m.label, m.offset, m.text) for m in config.run_of_show]
    if not any(offset.total_seconds() == 0 for _, offset, _ in marks):
        marks.append(("T0", launch.t0 - launch.t0, ""))
    for label, offset, text in marks:
        if label in posted:
            continue
        session.add(Timer(
            launch_id=launch.id, kind="mark", due_at=launch.t0 + offset, created_at=now,
            payload={"label": label, "text": text, "t0": offset.total_seconds() == 0},
        ))
