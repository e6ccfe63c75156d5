"""The launch at a glance: the state App Home and the board show, built from small sections.

A section is a function of the Context that returns plain data (no words: templates own those),
registered with `@section(name)`; a viewer's own part (their roles) with `@viewer_section(name)`.
App Home renders section `name` with `templates/home/<name>.json.j2`; the board (bot/board.py)
draws it in its page. A plot's data is a `Series` from a function registered with `@series`. So
readiness, the rollout phase, metric readings and action items are each one more function (and
one more home template).

App Home: `app_home_opened` publishes the viewer's home (`views.publish`, an outbox row on the pace
key `views.publish`: one a second for the workspace, within Slack's Tier 4). While viewers are
recent, a `home_refresh` timer looks every CHECK_EVERY: a viewer whose state changed since their
last view, or whose view is STALE_AFTER old (its ages and T-minus), gets it published again. The
check is the debounce: changes within it go out in one publish.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from commands import actions, readiness, rollout
from commands.authority import locked_launch
from commands.context import Context, Result, queue, roles_of
from commands.files import t_label
from commands.heartbeat import next_checkpoint, open_incidents, pending_heartbeats
from commands.launch import pending_marks
from commands.registry import timer
from commands.render import render_blocks, verbatim
from db.models import Decision, HomeViewer, Incident, OutboxMessage, ProbeResult, Timer

CHECK_EVERY = timedelta(seconds=15)  # how soon a change reaches App Home (and the debounce window)
STALE_AFTER = timedelta(minutes=5)  # a view's ages and T-minus are refreshed at least this often
OPEN_FRESH = timedelta(minutes=1)  # opening the tab again within this of an unchanged publish publishes nothing
RECENT = timedelta(hours=4)  # a viewer who opened App Home this recently gets republished
PUBLISH_KEY = "views.publish"  # the outbox's pace key for every home (no channel id has a dot)
SHOWN_INCIDENTS = 25  # App Home holds at most 100 blocks
DECISIONS = 5
MAX_POINTS = 2000  # of one series on the board

Section = Callable[[Context], dict[str, Any]]
ViewerSection = Callable[[Context, str], dict[str, Any]]
SECTIONS: dict[str, Section] = {}
VIEWER_SECTIONS: dict[str, ViewerSection] = {}


@dataclass(frozen=True)
class Series:
    """One line of a plot: readings over the launch (None: a failed reading, a gap) and the line it must
    stay on the right side of (a probe's threshold, a rollout gate)."""

    name: str
    unit: str
    points: list[tuple[datetime, float | None]] = field(default_factory=list)
    threshold: float | None = None
    over_is_bad: bool = True


SERIES: list[Callable[[Context], list[Series]]] = []


def section(name: str) -> Callable[[Section], Section]:
    def register(fn: Section) -> Section:
        SECTIONS[name] = fn
        return fn

    return register


def viewer_section(name: str) -> Callable[[ViewerSection], ViewerSection]:
    def register(fn: ViewerSection) -> ViewerSection:
        VIEWER_SECTIONS[name] = fn
        return fn

    return register


def series(fn: Callable[[Context], list[Series]]) -> Callable[[Context], list[Series]]:
    SERIES.append(fn)
    return fn


# -- the sections -------------------------------------------------------------------------
@section("launch")
def launch_section(ctx: Context) -> dict[str, Any]:
    launch = ctx.launch
    return {"name": launch.name, "rehearsal": launch.rehearsal, "t0": launch.t0, "started_at": launch.started_at,
            "timezone": launch.timezone}


@section("rollout")
def rollout_section(ctx: Context) -> dict[str, Any]:
    """The phase the launch is in (with its percent and since when) and the next one; nothing configured: {}."""
    plan = ctx.config.rollout
    if not plan.phases:
        return {}
    assert ctx.launch.id is not None
    row = rollout.current_phase(ctx.session, ctx.launch.id)
    upcoming = plan.after(row.phase if row else None)
    return {"phase": row.phase if row else None, "percent": row.percent if row else None,
            "entered_at": row.entered_at if row else None,
            "next": upcoming.name if upcoming else None, "next_percent": upcoming.percent if upcoming else None}


@section("incidents")
def incidents_section(ctx: Context) -> dict[str, Any]:
    incidents = open_incidents(ctx)
    return {"count": len(incidents), "open": [{
        "number": i.number, "severity": i.severity, "severity_name": ctx.config.severity(i.severity).name,
        "summary": i.summary, "owner": i.owner, "declared_at": i.declared_at,
        "acknowledged_at": i.acknowledged_at, "acknowledged_by": i.acknowledged_by,
    } for i in incidents]}


@section("readiness")
def readiness_section(ctx: Context) -> dict[str, Any]:
    """`Readiness: <ready>/<all> ready` and every critical gate not ready, with its owner now."""
    items = readiness.gates(ctx)
    return {"ready": sum(1 for i in items if i.state == "ready"), "all": len(items), "critical_not_ready": [{
        "key": i.key, "text": i.text, "state": i.state, "owner": i.owner,
        "holder": readiness.owner_user(ctx, i.owner), "due_at": i.due_at,
    } for i in items if i.critical and i.state != "ready"]}


@section("next")
def next_section(ctx: Context) -> dict[str, Any]:
    beats = pending_heartbeats(ctx, ctx.launch)
    checkpoint = next_checkpoint(ctx)
    marks = [m for m in pending_marks(ctx) if m.due_at is not None and m.due_at > ctx.now]
    mark = marks[0] if marks else None
    return {
        "heartbeat": beats[0].due_at if beats and not ctx.launch.heartbeat_paused else None,
        "heartbeat_paused": ctx.launch.heartbeat_paused,
        "checkpoint": checkpoint,
        "mark": {"at": mark.due_at, "label": mark.payload.get("label"), "text": mark.payload.get("text", "")}
        if mark else None,
    }


@section("decisions")
def decisions_section(ctx: Context) -> dict[str, Any]:
    rows = ctx.session.exec(select(Decision).where(Decision.launch_id == ctx.launch.id)
                            .order_by(Decision.created_at.desc(), Decision.id.desc()).limit(DECISIONS)).all()  # type: ignore[union-attr]
    return {"latest": [{"at": d.created_at, "actor": d.actor, "kind": d.kind, "text": d.text} for d in rows]}


@section("readings")
def readings_section(ctx: Context) -> dict[str, Any]:
    """The latest reading of every plotted series against its threshold."""
    out = []
    for line in all_series(ctx):
        at, value = line.points[-1] if line.points else (None, None)
        over = None
        if value is not None and line.threshold is not None:
            over = value > line.threshold if line.over_is_bad else value < line.threshold
        out.append({"name": line.name, "unit": line.unit, "at": at, "value": value, "threshold": line.threshold,
                    "failed": at is not None and value is None, "over": over})
    return {"latest": out}


@viewer_section("roles")
def roles_section(ctx: Context, viewer: str) -> dict[str, Any]:
    assert ctx.launch.id is not None
    return {"user": viewer, "roles": roles_of(ctx.session, ctx.launch.id, viewer)}


@viewer_section("actions")
def own_actions_section(ctx: Context, viewer: str) -> dict[str, Any]:
    """The viewer's open follow-up action items (owned by them, or by a role they hold)."""
    mine = [a for a in actions.action_items(ctx)
            if a.state == "open" and readiness.owner_user(ctx, a.owner) == viewer]
    return {"open": [{"number": a.number, "text": a.text, "due_at": a.due_at, "incident": a.incident_number}
                     for a in mine]}


# -- the plots ----------------------------------------------------------------------------
@series
def probe_series(ctx: Context) -> list[Series]:
    """Each latency probe's readings (a failure is a gap, never a zero) with its threshold."""
    out = []
    for probe in ctx.config.probes:
        if probe.metric != "latency":
            continue
        rows = ctx.session.exec(
            select(ProbeResult.checked_at, ProbeResult.ok, ProbeResult.latency_ms)
            .where(ProbeResult.launch_id == ctx.launch.id, ProbeResult.probe == probe.name)
            .order_by(ProbeResult.checked_at.desc(), ProbeResult.id.desc()).limit(MAX_POINTS)  # type: ignore[union-attr]
        ).all()
        points = [(at, latency if ok else None) for at, ok, latency in reversed(rows)]
        out.append(Series(name=probe.name, unit="ms", points=points, threshold=probe.threshold_ms))
    return out


def all_series(ctx: Context) -> list[Series]:
    return [line for fn in SERIES for line in fn(ctx)]


def incident_timeline(ctx: Context) -> dict[str, list[tuple[datetime, int]]]:
    """How many incidents had been declared, acknowledged and resolved, at each moment one was."""
    rows = ctx.session.exec(select(Incident.declared_at, Incident.acknowledged_at, Incident.resolved_at)
                            .where(Incident.launch_id == ctx.launch.id)).all()
    out: dict[str, list[tuple[datetime, int]]] = {}
    for index, name in enumerate(("declared", "acknowledged", "resolved")):
        times = sorted(row[index] for row in rows if row[index] is not None)
        out[name] = [(at, n) for n, at in enumerate(times, start=1)]
    return out


# -- the state ----------------------------------------------------------------------------
def glance(ctx: Context) -> dict[str, dict[str, Any]]:
    """Every shared section, in order."""
    return {name: fn(ctx) for name, fn in SECTIONS.items()}


def clock(ctx: Context) -> dict[str, Any]:
    """What moves with time alone (not part of a view's fingerprint): now and the T-minus or T-plus."""
    return {"now": ctx.now, "label": t_label(ctx.now, ctx.launch.t0) or None}


def fingerprint(state: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def home_view(ctx: Context, viewer: str, shared: dict[str, dict[str, Any]] | None = None,
              notice: str | None = None) -> tuple[dict[str, Any], str]:
    """The viewer's App Home (a `home` view) and the fingerprint of the state it shows."""
    state = dict(shared if shared is not None else glance(ctx))
    state.update({name: fn(ctx, viewer) for name, fn in VIEWER_SECTIONS.items()})
    values = {"clock": clock(ctx), "now": ctx.now, "tz": ctx.tz, "shown": SHOWN_INCIDENTS}
    blocks = render_blocks("home/notice.json.j2", notice=notice, **values) if notice else []
    for name, data in state.items():
        blocks.extend(render_blocks(f"home/{name}.json.j2", data=data, **values))
    blocks.extend(render_blocks("home/footer.json.j2", check_every=CHECK_EVERY, **values))
    return {"type": "home", "callback_id": "warroom_home", "blocks": verbatim(blocks[:100])}, fingerprint(state)


# -- publishing ---------------------------------------------------------------------------
def publish(ctx: Context, viewer: HomeViewer, shared: dict[str, dict[str, Any]] | None = None, *,
            fresh_for: timedelta = STALE_AFTER, notice: str | None = None) -> bool:
    """Queue the viewer's home unless it shows the same state and is younger than `fresh_for`. A viewer
    whose last home still waits in the outbox waits for it: the next check sends what changed since."""
    view, digest = home_view(ctx, viewer.user_id, shared, notice)
    fresh = viewer.published_at is not None and ctx.now - viewer.published_at < fresh_for
    if digest == viewer.published_hash and fresh and notice is None:
        return False
    ref = f"home:{viewer.user_id}"
    waiting = ctx.session.exec(select(OutboxMessage.id).where(
        OutboxMessage.ref == ref, OutboxMessage.status == "pending")).first()
    if waiting is not None:
        return False
    queue(ctx, PUBLISH_KEY, kind="home.publish", method="views.publish", ref=ref,
          payload={"user_id": viewer.user_id, "view": view})
    viewer.published_hash, viewer.published_at = digest, ctx.now
    ctx.session.add(viewer)
    return True


def viewer_row(ctx: Context, user: str) -> HomeViewer:
    row = ctx.session.exec(select(HomeViewer).where(HomeViewer.launch_id == ctx.launch.id, HomeViewer.user_id == user)
                           .with_for_update()).first()
    if row is None:
        assert ctx.launch.id is not None
        row = HomeViewer(launch_id=ctx.launch.id, user_id=user, opened_at=ctx.now)
    return row


def opened(ctx: Context) -> Result:
    """`app_home_opened` (the Home tab): publish this viewer's home and keep it fresh while they are recent."""
    viewer = viewer_row(ctx, ctx.user)
    viewer.opened_at = ctx.now
    ctx.session.add(viewer)
    publish(ctx, viewer, fresh_for=OPEN_FRESH)
    keep_fresh(ctx)
    return Result()


def clicked(ctx: Context, notice: str | None) -> Result:
    """A button on App Home was pressed: the clicker's home at once, saying what came of it."""
    publish(ctx, viewer_row(ctx, ctx.user), notice=notice)
    return Result()


def keep_fresh(ctx: Context) -> None:
    """One live `home_refresh` chain per launch (the launch row is locked while looking)."""
    launch = locked_launch(ctx)
    live = ctx.session.exec(select(Timer.id).where(Timer.launch_id == launch.id, Timer.kind == "home_refresh",
                                                   Timer.done_at.is_(None))).first()  # type: ignore[union-attr]
    if live is None:
        assert launch.id is not None
        ctx.session.add(Timer(launch_id=launch.id, kind="home_refresh", due_at=ctx.now + CHECK_EVERY,
                              created_at=ctx.now, payload={}))


@timer("home_refresh")
def refresh_homes(ctx: Context, due: Timer) -> None:
    """Republish every recent viewer's home that changed or went stale; then look again, while any is recent."""
    viewers = ctx.session.exec(select(HomeViewer).where(
        HomeViewer.launch_id == ctx.launch.id, HomeViewer.opened_at >= ctx.now - RECENT)  # type: ignore[operator]
        .order_by(HomeViewer.published_at, HomeViewer.id)).all()
    if not viewers:
        return  # the chain ends; the next app_home_opened starts it again
    shared = glance(ctx)
    for viewer in viewers:
        publish(ctx, viewer, shared)
    assert ctx.launch.id is not None
    ctx.session.add(Timer(launch_id=ctx.launch.id, kind="home_refresh", due_at=ctx.now + CHECK_EVERY,
                          created_at=ctx.now, payload={}))


# -- the board ----------------------------------------------------------------------------
def board_state(ctx: Context) -> dict[str, Any]:
    """What the board shows, as JSON-ready data (times as Unix seconds): the sections, the clock, the plots."""
    timeline = incident_timeline(ctx)
    return _plain({
        "clock": clock(ctx), "timezone": ctx.tz, "sections": glance(ctx),
        "plots": {
            "metrics": [{"name": s.name, "unit": s.unit, "threshold": s.threshold,
                         "points": [[at, value] for at, value in s.points]} for s in all_series(ctx)],
            "incidents": {name: [[at, n] for at, n in points] for name, points in timeline.items()},
        },
    })


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
