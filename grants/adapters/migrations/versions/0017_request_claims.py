"""Due work claimed with a lease on the request row: any worker takes what is due, none elects a leader.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    # An approval interrupted before Vault is now due work like any other (it was a start-up scan before).
    op.execute("UPDATE requests SET wake_at = decided_at WHERE state = 'approved' AND wake_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
