"""Each inbox row's MAC (grants/seals.py `Sealer.mac`, key in Vault) beside its work: a worker runs only work the web
side recorded from a verified Slack request. Rows recorded before keep NULL and are refused by a bot that has the key.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("mac")
