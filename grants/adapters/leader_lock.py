"""Leader locks: a PostgreSQL advisory lock on a dedicated connection, or a file lock beside a SQLite file."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)
LOCK_KEY = 0x6A17B07  # one fixed advisory-lock key for every jitbot replica on this database


class PostgresLeaderLock:
    """Held as long as its session lives: a killed leader's lock is released by PostgreSQL at once."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._connection: Any = None

    def acquire(self) -> bool:
        try:
            if self._connection is None:
                self._connection = self.engine.connect()
            got = bool(self._connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar())
            self._connection.commit()
            return got  # a follower keeps its one connection for the next try
        except Exception:
            self._close()
            return False

    def holding(self) -> bool:
        if self._connection is None:
            return False
        try:
            # Our own session must still hold the lock (a terminated backend loses it).
            held = self._connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k AND pid = pg_backend_pid()"),
                {"k": LOCK_KEY},
            ).scalar()
            self._connection.commit()
            return bool(held)
        except Exception:
            self._close()
            return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._connection.commit()
            except Exception:
                log.debug("releasing the advisory lock failed; closing its session releases it")
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()  # never hand a lock-holding session back to the pool
                self._connection.close()
            except Exception:
                log.debug("closing the leader connection failed")
            self._connection = None


class FileLeaderLock:
    """For SQLite: an exclusive flock on `<database>.leader`, released by the OS when the process dies."""

    def __init__(self, path: Path):
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        handle = open(self.path, "a+")  # held open for as long as we lead
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def holding(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def leader_lock(engine: Engine) -> PostgresLeaderLock | FileLeaderLock:
    if engine.dialect.name == "postgresql":
        return PostgresLeaderLock(engine)
    database = engine.url.database
    path = Path(database + ".leader") if database and database != ":memory:" else Path(f"/tmp/jitbot-{os.getpid()}.leader")  # noqa: S108
    return FileLeaderLock(path)
