"""The replay cache: a table of keys seen, claimed with INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from grants.adapters.sql_tables import SeenRequestRow

SEEN = SeenRequestRow.__table__  # type: ignore[attr-defined]
PURGE_EVERY = 60.0  # seconds between purges of expired keys, per process


class SqlReplayCache:
    """Implements ReplayGuard. The primary key makes the claim atomic: of two replicas inserting the same
    key at once, exactly one inserts a row; the other sees a conflict and is told "seen"."""

    def __init__(self, engine: Engine, write_lock: AbstractContextManager[Any] | None = None):
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._purged_at = 0.0
        self._purge_lock = threading.Lock()
        # SQLite has one writer: our own threads queue here rather than in SQLite's sleeping busy handler.
        # Pass the store's lock to share one queue with the store's writers.
        sqlite = engine.dialect.name == "sqlite"
        self._write_lock = (write_lock or threading.Lock()) if sqlite else None

    def first_time(self, key: str, until: datetime) -> bool:
        # RETURNING names the row only when this statement inserted it (rowcount is unreliable here on psycopg).
        statement = (
            self._insert(SEEN).values(key=key, expires_at=until.astimezone(UTC)).on_conflict_do_nothing().returning(SEEN.c.key)
        )
        if self._write_lock is not None:
            with self._write_lock, self.engine.begin() as connection:
                inserted = connection.execute(statement).first() is not None
        else:
            with self.engine.begin() as connection:
                inserted = connection.execute(statement).first() is not None
        self._maybe_purge()
        return inserted

    def purge(self, now: datetime | None = None) -> int:
        """Delete keys past their expiry (Slack's signature window is long over for them); the count deleted."""
        now = now or datetime.now(UTC)
        if self._write_lock is not None:
            with self._write_lock, self.engine.begin() as connection:
                return int(connection.execute(SEEN.delete().where(SEEN.c.expires_at < now)).rowcount)
        with self.engine.begin() as connection:
            return int(connection.execute(SEEN.delete().where(SEEN.c.expires_at < now)).rowcount)

    def _maybe_purge(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._purged_at = time.monotonic()
            self.purge()
        finally:
            self._purge_lock.release()
