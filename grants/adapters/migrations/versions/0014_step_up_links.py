"""Step-up links: one row per link an Approve click on a step-up scope answered with (digests, never secrets).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_up_links",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("request_id", sa.String(length=16), nullable=False, index=True),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("slack_user", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=128), nullable=True, unique=True),
        sa.Column("browser", sa.String(length=64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("step_up_links")
