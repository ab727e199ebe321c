"""Message references remember the approval step they were posted for; the audit chain head always exists.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_refs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.Integer(), nullable=True))
    # With the head row in place from the start, the first appends of two replicas cannot race to create it.
    op.execute(
        "INSERT INTO audit_head (id, seq, hash) SELECT 1, 0, '" + "0" * 64 + "' "
        "WHERE NOT EXISTS (SELECT 1 FROM audit_head) AND NOT EXISTS (SELECT 1 FROM audit_events)"
    )


def downgrade() -> None:
    with op.batch_alter_table("message_refs", schema=None) as batch_op:
        batch_op.drop_column("step")
