"""Workflows: break-glass reviews, extensions, reminders, escalation, nudges and one wake-up time per request.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS: list[sa.Column] = [  # type: ignore[type-arg]
    sa.Column("break_glass", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("extensions", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("extension_pending_seconds", sa.Integer(), nullable=True),
    sa.Column("reminders_sent", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("nudged_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("warned", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("review_state", sa.String(length=16), nullable=True),
    sa.Column("review_due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reviewed_by", sa.String(length=32), nullable=True),
    sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.add_column(column)
        batch_op.create_index("ix_requests_wake_at", ["wake_at"], unique=False)
        batch_op.create_index("ix_requests_review_state", ["review_state"], unique=False)
    # Requests from before this revision wake at their old deadlines.
    op.execute("UPDATE requests SET wake_at = expires_at WHERE state = 'active'")
    op.execute("UPDATE requests SET wake_at = pending_until WHERE state = 'pending'")


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_review_state")
        batch_op.drop_index("ix_requests_wake_at")
        for column in reversed(COLUMNS):
            batch_op.drop_column(column.name)
