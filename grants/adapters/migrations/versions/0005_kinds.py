"""Credential kinds: the service a request is on behalf of, and each person's registered SSH public key.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("on_behalf_of", sa.String(length=80), nullable=True))
    op.create_table(
        "ssh_keys",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("ssh_keys")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("on_behalf_of")
