"""The schema comes from the Alembic migrations; upgrades keep the data."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import SQLModel

from db.session import MIGRATIONS, make_engine, migrate


def alembic_config(conn: object) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_migrating_twice_is_a_no_op_and_upgrades_keep_data(database_url: str) -> None:
    engine = make_engine(database_url)
    first = ScriptDirectory(str(MIGRATIONS)).get_base()
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), first)
    now = datetime(2025, 10, 16, 17, 0, tzinfo=UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO launch (name, war_room, timezone, heartbeat_every_s, heartbeat_paused, "
                          "incident_seq, rehearsal, created_at) VALUES ('old', 'C0OLD', 'UTC', 1800, false, 1, "
                          "false, :now)"), {"now": now})
        conn.execute(text("INSERT INTO incident (launch_id, number, severity, summary, impact, workaround, status, "
                          "declared_by, declared_at, escalation_level, escalations, resolution) VALUES "
                          "(1, 1, 'sev1', 'kept across upgrades', '', '', 'open', 'U1', :now, 0, 0, '')"),
                     {"now": now})
    migrate(engine)
    migrate(engine)
    with engine.connect() as conn:
        summary = conn.execute(text("SELECT summary FROM incident")).scalar_one()
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert summary == "kept across upgrades"
    assert head == ScriptDirectory(str(MIGRATIONS)).get_current_head()
