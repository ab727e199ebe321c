"""The inbox on SQLite and PostgreSQL: one INSERT … ON CONFLICT DO NOTHING per received event, rows claimed with a lease."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from grants.adapters.sql_store import INBOX, SqlStore
from grants.inbox import Received, Work
from grants.seals import Sealer

PURGE_EVERY = 60.0  # seconds between purges of expired replay records, per process
MAC_PURPOSE = "inbox"  # the domain of the inbox rows' MACs (grants/seals.py)


class SqlInbox:
    """Implements the Inbox port beside a SqlStore (its engine, its writer queue, its heartbeat). The unique key makes
    the record atomic: of two replicas inserting the same key at once, exactly one inserts a row; the other is told
    it was seen.

    With a `sealer` (the credential seal key, read from Vault, never in the database) each row with work carries a MAC
    of its key, kind and payload, and a claimed row without a matching one is handed back as not `genuine`: someone
    wrote it into the database, not the gate. Without one, rows are recorded and run unauthenticated (start-up warns)."""

    def __init__(self, store: SqlStore, sealer: Sealer | None = None):
        self.store, self.sealer = store, sealer
        self._insert = pg_insert if store.engine.dialect.name == "postgresql" else sqlite_insert
        self.claims = store.inbox_claims  # the store's heartbeat renews this process's inbox leases too
        self._purged_at = 0.0
        self._purge_lock = threading.Lock()

    def receive(self, key: str, until: datetime, work: Work | None, worker: str | None, now: datetime) -> int | None:
        payload = json.dumps(work.args, separators=(",", ":")) if work else None
        row = {
            "key": key,
            "received_at": now,
            "expires_at": until.astimezone(UTC),
            "attempts": 1 if work and worker else 0,  # claimed at once by this process: its first run
            "next_attempt_at": now,
            # Nothing to do after the ack: the row is only the replay record.
            "kind": work.kind if work else None,
            "payload": payload,
            "mac": self._mac(key, work.kind, payload) if work and payload is not None and self.sealer else None,
            "done_at": None if work else now,
            "claimed_by": worker[:64] if work and worker else None,
            "claimed_until": now + self.claims.lease if work and worker else None,
        }
        # RETURNING names the row only when this statement inserted it (rowcount is unreliable here on psycopg).
        statement = self._insert(INBOX).values(**row).on_conflict_do_nothing().returning(INBOX.c.id)
        with self.store._writing() as connection:
            inserted = connection.execute(statement).scalar()
        self._maybe_purge(now)
        return int(inserted) if inserted is not None else None

    def claim_received(self, worker: str, now: datetime, limit: int) -> list[Received]:
        columns = [INBOX.c.id, INBOX.c.key, INBOX.c.kind, INBOX.c.payload, INBOX.c.attempts, INBOX.c.mac]
        counted = {"attempts": INBOX.c.attempts + 1}  # counted at the claim: work that kills the process still counts
        with self.store._writing() as connection:
            rows = self.claims.claim(connection, worker, now, limit, INBOX.c.kind.is_not(None), columns=columns, values=counted)
        return [self._received(r) for r in rows]

    def _mac(self, key: str, kind: str, payload: str) -> str:
        assert self.sealer is not None
        return self.sealer.mac(MAC_PURPOSE, key, kind, payload)

    def _received(self, row: Any) -> Received:
        genuine = self.sealer is None or (
            row.payload is not None and self.sealer.check_mac(MAC_PURPOSE, row.mac, row.key, str(row.kind), row.payload)
        )
        try:
            args = json.loads(row.payload or "{}") if genuine else {}
        except ValueError:
            args, genuine = {}, False
        if not isinstance(args, dict):
            args, genuine = {}, False
        return Received(row.id, Work(str(row.kind), args), row.attempts + 1, genuine)

    def done(self, entry_id: int, at: datetime) -> None:
        # The arguments (a click's body, its response URL) are not kept once the work ran: only the key stays.
        with self.store._writing() as connection:
            connection.execute(
                INBOX.update().where(INBOX.c.id == entry_id).values(done_at=at, payload=None, mac=None, claimed_until=None)
            )

    def purge(self, now: datetime | None = None) -> int:
        """Delete done rows past their expiry (Slack's signature window is long over for them); the count deleted."""
        now = now or datetime.now(UTC)
        with self.store._writing() as connection:
            result = connection.execute(INBOX.delete().where(INBOX.c.expires_at < now, INBOX.c.done_at.is_not(None)))
            return int(result.rowcount)

    def _maybe_purge(self, now: datetime) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._purged_at = time.monotonic()
            self.purge(now)
        finally:
            self._purge_lock.release()
