"""Storage: SQLModel models, engine and sessions, queries, migrations."""
