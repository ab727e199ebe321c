"""Alembic schema migrations, applied programmatically (`jitbot db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to `revision`; the schema revision before and after (None before: there was no schema)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # processes starting together: one migrates, the others then see head
            connection.execute(text("SELECT pg_advisory_xact_lock(7026117)"))
        before = _current(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        return before, _current(connection)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
