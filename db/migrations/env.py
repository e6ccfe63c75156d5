"""Alembic environment: runs on the connection handed in by db.session.migrate."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import db.beyond  # noqa: F401  (registers the tables of migration 0009_paging)
import db.channels  # noqa: F401  (registers the incident channels table)
import db.models  # noqa: F401  (registers the tables)
import db.readiness  # noqa: F401

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")

if connection is None:  # `alembic revision --autogenerate` from a shell
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///warroom.db"
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
