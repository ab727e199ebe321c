"""Leader locks: a PostgreSQL advisory lock on a dedicated connection, or a file lock beside a SQLite file."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import psycopg
import psycopg.conninfo
from sqlalchemy import URL, Engine

log = logging.getLogger(__name__)
LOCK_KEY = 0x6A17B07  # one fixed advisory-lock key for every jitbot replica on this database
T = TypeVar("T")


class PostgresLeaderLock:
    """A session advisory lock on a dedicated connection that cannot outlive a vanished holder.

    A clean kill ends the session and PostgreSQL releases the lock at once. A frozen host or a cut TCP path
    does not: the server would keep the idle session (and the lock) for as long as TCP allows, hours without
    keepalives. So, with `lease` seconds (default 5):
    - the server ends the session after `lease` seconds without a query (`idle_session_timeout`), which
      frees the lock for another replica whatever the holder's network does; the holder keeps its session
      busy with a heartbeat every second, on its own thread, so a slow tick never costs it the lock;
    - the holder gives up after `lease / 2` seconds without a confirmed heartbeat (every call has a
      client-side deadline; a call past it has its socket shut down), so it stops its timers before the
      server can hand the lock to anyone else: two leaders never run at once;
    - TCP keepalives and `tcp_user_timeout` make a dead path fail fast on both ends instead of hanging.
    """

    def __init__(self, engine: Engine, lease: float = 5.0, beat: float = 1.0):
        self.lease, self.beat = lease, beat
        self.conninfo = lock_conninfo(engine.url, lease)
        self.on_lost: Callable[[], None] | None = None  # told at once (from the heartbeat) when the lock is lost
        self._connection: psycopg.Connection[Any] | None = None
        self._confirmed = 0.0  # time.monotonic() of the last heartbeat the server answered while we held the lock
        self._heart: threading.Thread | None = None
        self._stop = threading.Event()

    def acquire(self) -> bool:
        if self._heart is not None:
            if self.holding():
                return True
            self._close()  # lost: start again on a new session
        try:
            connection = self._connection or self._connect()
            got = bool(self._call(lambda: connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]))  # type: ignore[index]
        except Exception:
            self._close()  # a follower's session may have been ended for idling: the next tick reconnects
            return False
        if got:
            self._confirmed = time.monotonic()
            self._stop.clear()
            self._heart = threading.Thread(target=self._heartbeat, name="jitbot-leader-heartbeat", daemon=True)
            self._heart.start()
        return got  # a follower keeps its one connection for the next try

    def holding(self) -> bool:
        # No database call here: the heartbeat confirms, and a lapse of half the lease means lost.
        return self._heart is not None and time.monotonic() - self._confirmed < self.lease / 2

    def release(self) -> None:
        self._stop_heart()
        connection = self._connection
        if connection is not None:
            try:
                self._call(lambda: connection.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,)))
            except Exception:
                log.debug("releasing the advisory lock failed; ending its session releases it")
        self._close()

    def _heartbeat(self) -> None:
        connection = self._connection
        while not self._stop.wait(self.beat) and connection is not None:
            try:
                # Our own session must still hold the lock (a terminated backend loses it).
                held = self._call(lambda: connection.execute(HELD, (LOCK_KEY,)).fetchone()[0])  # type: ignore[index]
            except Exception:
                held = False
            if not held:
                log.warning("the leader lock's session is gone or unanswered: giving up the lead")
                self._confirmed = 0.0
                if self.on_lost is not None:
                    self.on_lost()
                return
            self._confirmed = time.monotonic()

    def _connect(self) -> psycopg.Connection[Any]:
        self._connection = psycopg.connect(self.conninfo, autocommit=True)
        return self._connection

    def _call(self, work: Callable[[], T]) -> T:
        """Run one database call with a deadline of half the lease; past it, cut the socket and fail."""
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, work()))
            except BaseException as error:  # handed back to the caller's thread
                outcome.append((False, error))

        worker = threading.Thread(target=run, name="jitbot-leader-call", daemon=True)
        worker.start()
        worker.join(self.lease / 2)
        if worker.is_alive():
            self._sever()  # unblocks the worker: its read sees the socket shut
            worker.join(1.0)
            raise TimeoutError("the database did not answer the leader lock in time")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def _sever(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            with socket.fromfd(connection.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as handle:
                handle.shutdown(socket.SHUT_RDWR)  # shuts the shared socket, not just this duplicate descriptor
        except Exception:
            log.debug("could not shut the leader lock's socket")

    def _stop_heart(self) -> None:
        heart, self._heart = self._heart, None
        if heart is not None:
            self._stop.set()
            if heart is not threading.current_thread():
                heart.join(self.lease)

    def _close(self) -> None:
        self._stop_heart()
        connection, self._connection = self._connection, None
        if connection is not None:
            self._sever()  # a close on a blackholed path must not wait for the server
            try:
                connection.close()
            except Exception:
                log.debug("closing the leader connection failed")


def lock_conninfo(url: URL, lease: float) -> str:
    """libpq parameters for the lock's own session: fail a dead path fast, and let the server end us when silent."""
    args = url.translate_connect_args(username="user", database="dbname")
    half = max(1, int(lease / 2))
    options = " ".join(
        f"-c {name}={value}"
        for name, value in (
            ("idle_session_timeout", f"{int(lease * 1000)}"),  # the server frees the lock of a silent holder
            ("idle_in_transaction_session_timeout", f"{int(lease * 1000)}"),
            ("statement_timeout", f"{half * 1000}"),
            ("tcp_keepalives_idle", "1"),  # the server's side of the same socket, for a path that drops packets
            ("tcp_keepalives_interval", "1"),
            ("tcp_keepalives_count", "2"),
            ("tcp_user_timeout", f"{half * 1000}"),
        )
    )
    params: dict[str, Any] = {
        **{k: v for k, v in args.items() if v is not None},
        **{k: v for k, v in url.query.items() if isinstance(v, str)},
        "application_name": "jitbot-leader",
        "connect_timeout": max(2, half),  # libpq's minimum is 2 s
        "keepalives": 1,
        "keepalives_idle": 1,
        "keepalives_interval": 1,
        "keepalives_count": 2,
        "tcp_user_timeout": half * 1000,  # unacknowledged data fails the connection instead of waiting on
        "options": options,
    }
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


HELD = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND pid = pg_backend_pid()"


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
