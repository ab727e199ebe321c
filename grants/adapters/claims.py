"""Rows claimed with a lease: how every worker takes due work from a table (the outbox, the inbox, timers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, or_, select


class Claims:
    """The lease columns of one table: `claimed_by`, `claimed_until`, and a due column (default `next_attempt_at`).

    A row is claimable when it is open (`open_`: not yet settled), due, and its lease is free or has lapsed. A live
    worker renews its leases (a heartbeat); a dead or stopped one does not, so another worker takes its rows over
    once the lease lapses. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so workers claim disjoint rows without
    waiting for each other; SQLite has one writer, so the caller's write transaction serializes claims."""

    def __init__(self, table: Table, open_: Sequence[ColumnElement[bool]], lease: timedelta, due: str = "next_attempt_at"):
        self.table, self.open, self.lease = table, list(open_), lease
        self.due = table.c[due]
        self.key = next(iter(table.primary_key.columns))

    def claimable(self, now: datetime) -> list[ColumnElement[bool]]:
        c = self.table.c
        return [*self.open, self.due <= now, or_(c.claimed_until.is_(None), c.claimed_until <= now)]

    def claim(
        self, connection: Any, worker: str, now: datetime, limit: int, *where: ColumnElement[bool], columns: Sequence[Any] = (),
        soonest: bool = False, values: dict[str, Any] | None = None,
    ) -> list[Any]:  # fmt: skip
        """Claim up to `limit` due rows (oldest key first, or soonest due) for `worker`, in the caller's write transaction;
        `values` are written with the lease (an attempt counted at the claim, before the work can kill the process)."""
        query = (
            select(*(columns or self.table.c))
            .where(*self.claimable(now), *where)
            .order_by(self.due if soonest else self.key)
            .limit(limit)
            .with_for_update(skip_locked=True, of=self.table)
        )
        rows = connection.execute(query).all()
        if rows:
            keys = [getattr(r, self.key.name) for r in rows]
            connection.execute(
                self.table.update()
                .where(self.key.in_(keys))
                .values(claimed_by=worker[:64], claimed_until=now + self.lease, **(values or {}))
            )
        return list(rows)

    def renew(self, connection: Any, worker_prefix: str, now: datetime) -> int:
        """Extend the live leases of every worker whose name starts with `worker_prefix` (one process's heartbeat)."""
        c = self.table.c
        result = connection.execute(
            self.table.update()
            .where(c.claimed_by.startswith(worker_prefix, autoescape=True), c.claimed_until > now, *self.open)
            .values(claimed_until=now + self.lease)
        )
        return int(result.rowcount)

    def release(self, connection: Any, key: Any, when: datetime, **values: Any) -> None:
        """Give the row back, due again at `when` (a retry, a not-before time from a rate limit)."""
        connection.execute(
            self.table.update()
            .where(self.key == key)
            .values({self.due.name: when, "claimed_by": None, "claimed_until": None, **values})
        )

    def let_go(self, connection: Any, worker: str, keys: Sequence[Any], not_before: datetime | None = None) -> None:
        """End `worker`'s leases on `keys`, leaving the due column as the work wrote it; with `not_before`, nobody
        claims them again before then (work that failed, retried later instead of at once)."""
        c = self.table.c
        connection.execute(
            self.table.update()
            .where(self.key.in_(list(keys)), c.claimed_by == worker[:64])
            .values(claimed_by=None, claimed_until=not_before)
        )
