"""Alembic environment: runs migrations on the connection handed over by `migrate.upgrade`."""

from alembic import context
from sqlmodel import SQLModel

from grants.adapters import sql_tables  # noqa: F401  (registers the tables)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
