"""The one-writer-at-a-time lock of a SQLite database, shared by the threads of a process and by its processes."""

from __future__ import annotations

import fcntl
import os
import threading
from types import TracebackType

from sqlalchemy import Engine


class SqliteWriteLock:
    """Our threads queue on a lock, our processes (the HTTP process and its worker, a CLI export) on a file lock
    beside the database. Left to SQLite's busy handler, a writer that meets another would sleep in growing steps
    (1, 2, 5 … 100 ms) and poll; queued here, the next writer is woken the moment the last one commits."""

    def __init__(self, engine: Engine) -> None:
        self._threads = threading.Lock()
        database = engine.url.database
        self._fd: int | None = None
        if database and database != ":memory:" and not database.startswith("file:"):
            self._fd = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks in the kernel, without Python's lock
            except BaseException:
                self._threads.release()
                raise

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
