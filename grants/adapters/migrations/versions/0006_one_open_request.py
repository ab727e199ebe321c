"""At most one open request (pending, approved or active) per requester and scope, enforced by the database.

Checking first and inserting after let concurrent requests through (20 at once made 5 pending); a partial
unique index makes the database refuse the second, across threads and replicas alike.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN = "state IN ('pending', 'approved', 'active')"


def upgrade() -> None:
    op.create_index(
        "uq_requests_one_open", "requests", ["requester", "scope"], unique=True,
        sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_requests_one_open", table_name="requests")
