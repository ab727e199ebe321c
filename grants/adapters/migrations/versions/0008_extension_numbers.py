"""A pending extension keeps its ask number, so the buttons of a denied or failed ask never decide a later one.

The number is the request's version when the extension was asked (unique, only grows). Rows already waiting keep
NULL: their buttons were shown for `e<extensions + 1>`, which is what they are still decided by.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("extension_number", sa.Integer(), nullable=True))  # SQLite adds it in place


def downgrade() -> None:
    with op.batch_alter_table("requests") as table:
        table.drop_column("extension_number")
