"""Due requests claimed with a lease on their own row: every worker takes what is due, the database decides who."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select

from grants.adapters.sql_store import REQUESTS, SqlStore, as_utc


class SqlDue:
    """Implements the DueClaims port beside a SqlStore: a request is due when its `wake_at` has come; a worker's
    lease on the row keeps every other worker off it while it runs (renewed by the store's heartbeat)."""

    def __init__(self, store: SqlStore):
        self.store = store
        self.claims = store.due_claims  # one heartbeat per process renews these leases with the others

    def claim(self, worker: str, now: datetime, limit: int, done: Sequence[str] = ()) -> list[str]:
        with self.store._writing() as connection:
            if done:
                self.claims.let_go(connection, worker, done)
            rows = self.claims.claim(connection, worker, now, limit, columns=[REQUESTS.c.id], soonest=True)
        return [str(row.id) for row in rows]

    def let_go(self, worker: str, request_ids: Sequence[str], not_before: datetime | None = None) -> None:
        if request_ids:
            with self.store._writing() as connection:
                self.claims.let_go(connection, worker, request_ids, not_before)

    def next_due(self, now: datetime) -> datetime | None:
        """The soonest `wake_at` no live lease holds (what this worker's timer should wake it for)."""
        c = REQUESTS.c
        query = select(func.min(c.wake_at)).where(c.wake_at.is_not(None), or_(c.claimed_until.is_(None), c.claimed_until <= now))
        with self.store.reader.connect() as connection:
            return as_utc(connection.execute(query).scalar())

    def renew(self, worker_prefix: str, now: datetime) -> int:
        return self.store.renew_claims(worker_prefix, now)
