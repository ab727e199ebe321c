"""SSH certificates in the shared database: each signed serial with its end (and, once revoked early, when), and each
SSH CA mount's public key, so every replica builds the same KRL, without Vault.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ssh_certificates",
        sa.Column("mount", sa.String(length=128), primary_key=True),
        sa.Column("serial", sa.String(length=20), primary_key=True),  # an unsigned 64-bit number: text, not BIGINT
        sa.Column("request_id", sa.String(length=16), nullable=True),
        sa.Column("valid_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_ssh_certificates_valid_before", "ssh_certificates", ["valid_before"])
    op.create_table(
        "ssh_ca_keys",
        sa.Column("mount", sa.String(length=128), primary_key=True),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ssh_ca_keys")
    op.drop_index("ix_ssh_certificates_valid_before", table_name="ssh_certificates")
    op.drop_table("ssh_certificates")
