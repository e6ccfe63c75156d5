"""`python -m bot export --format ndjson|csv|md [--launch NAME] [--out FILE] [--database URL|FILE]`.

Which record: `--database` if given, else `DATABASE_URL` if set, else the newest of
`warroom.db` (the shell's and a local bot's) and `rehearsal.db` (a rehearsal's), named
on stderr — so `export` right after `rehearse` exports that rehearsal. Which launch:
`--launch`, else the configured launch if the record has it, else the newest launch.

`/export` builds the same file, when the outbox sends it (`ExportBuilder`): its row keeps what to
build, not the file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.clock import Clock, SystemClock
from bot.config import Env
from bot.logs import Redactor
from commands.config import Config, load_config
from commands.context import Context
from commands.export import built_file
from db.models import Launch, OutboxMessage
from db.session import make_engine, migrate, reading

LOCAL_RECORDS = ("warroom.db", "rehearsal.db")


def export_file(ctx: Context, build: dict[str, Any], secrets: Iterable[str]) -> str:
    """The file `build` asks for (`{"format": "csv"}` …) of `ctx.launch` as the record is at `ctx.now`,
    with no token or secret in it: the one way both the CLI and `/export` make a file."""
    return Redactor(secrets)(built_file(ctx, build))


@dataclass(frozen=True)
class ExportBuilder:
    """Builds an export row's file when the outbox sends it (after it made sure the file is not in
    the channel already), from what the row asks for: format, launch, requester."""

    engine: Engine
    config: Config
    clock: Clock
    secrets: tuple[str, ...] = ()

    def __call__(self, message: OutboxMessage) -> str:
        build = dict(message.payload.get("build") or {})
        with reading(self.engine) as session:
            launch = session.get(Launch, build.get("launch_id") or message.launch_id)
            if launch is None:
                raise LookupError(f"outbox row {message.id}: no launch {build.get('launch_id')!r} to export")
            ctx = Context(session=session, now=self.clock.now(), config=self.config,
                          user=str(build.get("requested_by") or "warroom"), launch=launch)
            return export_file(ctx, build, self.secrets)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{path}"


def find_record(database: str | None, environ: dict[str, str] | None = None) -> tuple[str | None, str]:
    """(database URL or None, how it was chosen)."""
    e = os.environ if environ is None else environ
    if database:
        return (database if "://" in database else sqlite_url(database)), "--database"
    if e.get("DATABASE_URL"):
        return e["DATABASE_URL"], "DATABASE_URL"
    present = [Path(name) for name in LOCAL_RECORDS if Path(name).exists()]
    if not present:
        return None, "no warroom.db or rehearsal.db here"
    newest = max(present, key=_written)
    return sqlite_url(newest), f"the newest local record ({newest})"


def _written(path: Path) -> float:
    """When a SQLite record was last written (its WAL file counts)."""
    wal = path.with_name(path.name + "-wal")
    return max(path.stat().st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)


def choose_launch(session: Session, wanted: str | None, configured: str) -> Launch | None:
    if wanted:
        return session.exec(select(Launch).where(Launch.name == wanted)).first()
    return (session.exec(select(Launch).where(Launch.name == configured)).first()
            or session.exec(select(Launch).order_by(Launch.id.desc())).first())  # type: ignore[union-attr]


def run_export(env: Env, fmt: str, launch: str | None, out: str | None, database: str | None = None) -> int:
    url, how = find_record(database)
    if url is None:
        print(f"warroom: nothing to export: {how}. Run the bot, the shell or a rehearsal first, "
              "or name the record with --database.", file=sys.stderr)
        return 1
    config = load_config(env.config_path)
    engine = make_engine(url)
    try:
        migrate(engine)
        with Session(engine, expire_on_commit=False) as session:
            chosen = choose_launch(session, launch, config.launch_name)
            if chosen is None:
                names = [row.name for row in session.exec(select(Launch).order_by(Launch.id)).all()]
                where = f"; launches there: {', '.join(names)}" if names else "; it holds no launch yet"
                print(f"warroom: no launch {launch or ''} in {_safe(url)}{where}", file=sys.stderr)
                return 1
            ctx = Context(session=session, now=SystemClock().now(), config=config, user="cli", launch=chosen)
            text = export_file(ctx, {"format": fmt}, env.secrets)
            name = chosen.name
    finally:
        engine.dispose()
    if out:
        Path(out).write_text(text, encoding="utf-8", newline="")
        print(f"warroom: wrote {fmt} of {name!r} from {_safe(url)} ({how}) to {out}", file=sys.stderr)
    else:
        if how.startswith("the newest"):
            print(f"warroom: exporting {name!r} from {_safe(url)} ({how})", file=sys.stderr)
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def _safe(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return url
