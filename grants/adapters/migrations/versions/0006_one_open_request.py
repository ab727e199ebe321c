"""At most one open request (pending, approved or active) per requester and scope, enforced by the database.

Checking first and inserting after let concurrent requests through (20 at once made 5 pending); a partial
unique index makes the database refuse the second, across threads and replicas alike.

A database that already holds the duplicates the old bug made would fail to build the index, so they are
resolved first, in the same transaction, deterministically: per requester and scope the most advanced open
request is kept (active, then approved, then pending; the oldest of equals, then the lowest ID), and each other
one is ended in a state the lifecycle allows from where it is, with its audit event appended to the hash chain
here, under the chain-head lock, exactly as the store appends (writing the events now is practical and more
honest than marking rows for the bot to audit later: the trail never shows a request ending without its event):

- pending  -> cancelled    (`cancelled`, actor `system`)
- approved -> failed       (`issue_failed`: nothing was issued for it, and now nothing will be)
- active   -> revoked      (`revoked`, actor `system`). A migration cannot reach Vault, so the event says so
  (`revoked_in_vault: false`) together with the credential and when it ends by itself; Vault's TTL still ends it
  on time, the bot's reconcile deletes identity groups that no active grant holds, and the IDs are printed so an
  operator can revoke the rest early (`bao token revoke -accessor …`).

Revision ID: 0006
Revises: 0005
"""

import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from grants.audit import GENESIS_HASH, chained, detail_text
from grants.domain import AuditEvent

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN = "state IN ('pending', 'approved', 'active')"
RANK = {"active": 0, "approved": 1, "pending": 2}  # which of a requester's duplicates is kept: the most advanced
ENDING = {"pending": ("cancelled", "cancelled"), "approved": ("failed", "issue_failed"), "active": ("revoked", "revoked")}
log = logging.getLogger("alembic.runtime.migration")

requests = sa.table(
    "requests",
    sa.column("id", sa.String), sa.column("scope", sa.String), sa.column("requester", sa.String),
    sa.column("state", sa.String), sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("expires_at", sa.DateTime(timezone=True)), sa.column("ended_at", sa.DateTime(timezone=True)),
    sa.column("accessor", sa.String), sa.column("wake_at", sa.DateTime(timezone=True)), sa.column("version", sa.Integer),
)  # fmt: skip
audit = sa.table(
    "audit_events",
    sa.column("seq", sa.Integer), sa.column("at", sa.DateTime(timezone=True)), sa.column("event", sa.String),
    sa.column("request_id", sa.String), sa.column("scope", sa.String), sa.column("actor", sa.String),
    sa.column("subject", sa.String), sa.column("detail", sa.Text), sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
)  # fmt: skip
head = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer), sa.column("hash", sa.String))


def upgrade() -> None:
    end_duplicates(op.get_bind())
    op.create_index(
        "uq_requests_one_open", "requests", ["requester", "scope"], unique=True,
        sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN),
    )  # fmt: skip


def end_duplicates(connection: sa.Connection) -> None:
    rows = connection.execute(
        sa.select(requests.c.id, requests.c.scope, requests.c.requester, requests.c.state, requests.c.created_at,
                  requests.c.expires_at, requests.c.accessor, requests.c.version)
        .where(sa.text(OPEN))
    ).all()  # fmt: skip
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.requester, row.scope), []).append(row)
    duplicates = [(g[0], other) for g in (sorted(g, key=_keep_first) for g in groups.values()) if len(g) > 1 for other in g[1:]]
    if not duplicates:
        return
    # The same lock the store's appends take: no replica can append between our reads and writes.
    locked = sa.select(head.c.seq, head.c.hash).where(head.c.id == 1).with_for_update()
    found: Any = connection.execute(locked).first()
    if found is None:  # the head row was deleted: rebuild it from the newest event, as the store does
        last = connection.execute(sa.select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
        found = (int(last.seq), str(last.hash)) if last else (0, GENESIS_HASH)
        connection.execute(head.insert().values(id=1, seq=found[0], hash=found[1]))
    seq, prev = int(found[0]), str(found[1])
    now = datetime.now(UTC)
    for kept, other in duplicates:
        state, event = ENDING[other.state]
        detail: dict[str, object] = {"by": "migration 0006", "why": "a duplicate open request", "kept": kept.id}
        if other.state == "active":
            detail |= {"revoked_in_vault": False, "accessor": other.accessor, "ends_by_itself_at": _iso(other.expires_at)}
            log.warning("ended duplicate active grant %s in the database only: credential %s", other.id, other.accessor)
        ended = connection.execute(
            requests.update()
            .where(requests.c.id == other.id, requests.c.version == other.version)
            .values(state=state, ended_at=now, wake_at=None, version=other.version + 1)
        )
        if ended.rowcount != 1:
            raise RuntimeError(f"request {other.id} changed during the migration; run `jitbot db upgrade` again")
        linked = chained(AuditEvent(event=event, at=now, actor="system", request_id=other.id, scope=other.scope,
                                    subject=other.requester, detail=detail), seq + 1, prev)  # fmt: skip
        connection.execute(
            audit.insert().values(seq=linked.seq, at=linked.at, event=linked.event, request_id=linked.request_id,
                                  scope=linked.scope, actor=linked.actor, subject=linked.subject,
                                  detail=detail_text(linked.detail), prev_hash=linked.prev_hash, hash=linked.hash)
        )  # fmt: skip
        seq, prev = linked.seq or seq + 1, linked.hash or prev
    connection.execute(head.update().where(head.c.id == 1).values(seq=seq, hash=prev))
    log.warning("migration 0006: ended %d duplicate open request(s); see their audit events", len(duplicates))


def _keep_first(row: Any) -> tuple[int, str, str]:
    return RANK[row.state], _iso(row.created_at) or "", row.id


def _iso(value: datetime | None) -> str | None:
    """UTC ISO text; SQLite hands back naive datetimes, which are stored as UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def downgrade() -> None:
    op.drop_index("uq_requests_one_open", table_name="requests")
