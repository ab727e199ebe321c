"""The inbox: each received Slack event recorded once, in the ack's one insert; it replaces the replay cache.

The row's unique key is what `seen_requests` keyed on (a SHA-256 of the signed request or the event ID), so the
inbox row is the replay record; its work, if any, is claimed with a lease and run after the ack. Keys already seen
are carried over as done rows, so an upgrade opens no replay window.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_inbox_open", "inbox", ["done_at", "next_attempt_at"])
    op.create_index("ix_inbox_expires_at", "inbox", ["expires_at"])
    op.execute(
        "INSERT INTO inbox (key, received_at, expires_at, attempts, next_attempt_at, done_at)"
        " SELECT key, expires_at, expires_at, 0, expires_at, expires_at FROM seen_requests"
    )
    op.drop_index("ix_seen_requests_expires_at", table_name="seen_requests")
    op.drop_table("seen_requests")


def downgrade() -> None:
    op.create_table(
        "seen_requests",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_seen_requests_expires_at", "seen_requests", ["expires_at"])
    op.execute("INSERT INTO seen_requests (key, expires_at) SELECT key, expires_at FROM inbox")
    op.drop_index("ix_inbox_expires_at", table_name="inbox")
    op.drop_index("ix_inbox_open", table_name="inbox")
    op.drop_table("inbox")
