"""SQLite's one writer, queued across processes: a second process waits in the kernel for the first to commit."""

from __future__ import annotations

import subprocess
import sys
import time

from grants.adapters.sql_store import make_engine
from grants.adapters.sqlite_lock import SqliteWriteLock

HOLDER = """
import sys, time
from grants.adapters.sql_store import make_engine
from grants.adapters.sqlite_lock import SqliteWriteLock
lock = SqliteWriteLock(make_engine(sys.argv[1]))
with lock:
    print(time.time(), flush=True)
"""


def test_a_second_process_writes_only_after_the_first_released_the_lock(tmp_path):
    url = f"sqlite:///{tmp_path / 'jitbot.db'}"
    lock = SqliteWriteLock(make_engine(url))
    with lock:
        other = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert other.poll() is None, "the other process got the lock while this one held it"
        released = time.time()
    out, _ = other.communicate(timeout=20)
    assert float(out.split()[0]) >= released  # it went the moment this process let go, not before
    assert (tmp_path / "jitbot.db-writer.lock").exists()
    lock.close()


def test_threads_of_one_process_queue_too_and_memory_databases_need_no_file(tmp_path):
    lock = SqliteWriteLock(make_engine("sqlite://"))
    with lock:
        assert not lock._threads.acquire(blocking=False)  # a second thread of this process would wait here
    assert lock._threads.acquire(blocking=False)
    lock._threads.release()
    assert not list(tmp_path.iterdir())
