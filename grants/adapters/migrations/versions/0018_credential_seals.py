"""A grant's credential seal (grants/seals.py) beside its handle: revocation proves ownership without a Vault lookup.
Rows issued before keep NULL and are looked up in Vault as before.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("credential_seal", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("credential_seal")
