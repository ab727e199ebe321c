"""The database the SQL store's parts share: the engines, SQLite's writer lock and the one write transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from grants.adapters.claims import Claims
from grants.outbox import CLAIM_LEASE


def make_engine(url: str, writer: bool = True) -> Engine:
    """An engine that survives dropped connections and serializes SQLite writers safely."""
    if url.startswith("sqlite"):
        # hide_parameters: an exception's text never carries bound values (reasons, request rows) into logs.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front, so a read-then-write never deadlocks;
            # a reader engine begins DEFERRED and, in WAL mode, never waits for a writer.
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    # Sessions in UTC, whatever the server's default: `at` is hashed and exported as UTC.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args={"options": "-c timezone=utc"}, hide_parameters=True
    )


def unreachable(url: str) -> str | None:
    """Why the database at `url` cannot be used (the driver's first line: no password, no user data), or None."""
    # A bounded wait: an address that drops packets would otherwise hold start-up for minutes.
    engine = create_engine(url, connect_args={"connect_timeout": 10} if url.startswith("postgresql") else {})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlDatabase:
    """The engines (a writer, and on SQLite a reader that never waits for it), the claimed tables' leases, and
    `_writing`: the one write transaction every part of the store (and every adapter beside it) writes in."""

    def __init__(self, engine: Engine, claim_lease: timedelta = CLAIM_LEASE):
        self.engine = engine
        # How long a worker's claim holds: longer than any one piece of work (a delivery, a click).
        self.claim_lease = claim_lease
        sqlite = engine.dialect.name == "sqlite"
        self.reader = make_engine(engine.url.render_as_string(hide_password=False), writer=False) if sqlite else engine
        # SQLite has one writer at a time, and one process (`jitbot serve`): our threads queue on a lock, woken the
        # moment the last writer commits, instead of polling in SQLite's busy handler (1, 2, 5 … 100 ms sleeps).
        self._write_lock: AbstractContextManager[Any] = threading.Lock() if sqlite else nullcontext()
        # Every table whose rows workers claim (each part adds its own as it is built); one heartbeat renews a
        # process's leases on all of them.
        self.claimed: list[Claims] = []

    def renew_claims(self, worker_prefix: str, now: datetime) -> int:
        with self._writing() as connection:
            return sum(claims.renew(connection, worker_prefix, now) for claims in self.claimed)

    def close(self) -> None:
        """Close every pooled connection (a stopped runtime holds no sockets or file handles)."""
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """A write transaction, taken after the in-process writer lock (a no-op on PostgreSQL)."""
        with self._write_lock, self.engine.begin() as connection:
            yield connection

    def healthy(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False
