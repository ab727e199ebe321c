"""APScheduler-backed timers: they only wake the bot; the database stays the truth."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)
MAX_BATCH = 500  # keys handed over at once; the use case writes them in smaller transactions


class SchedulerTimer:
    """Implements the Timer port with one in-memory job store owned by this process alone."""

    def __init__(self, on_due: Callable[[str], None] | None = None, workers: int = 8):
        self.on_due = on_due  # what a due key wakes (the service's `wake`); the wiring sets it
        # misfire_grace_time=None: a job that came due while we were busy or down still runs
        # (APScheduler's default of 1 s would silently drop it); coalesce: run it once, not N times.
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)},
            # max_instances 2: a job that re-arms its own key for a moment already past must not be
            # skipped (and so dropped) while its first run is still finishing.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 2},
            timezone="UTC",
        )

        # When set, keys that come due together are handed over in batches (a burst of expiries is then ended in
        # batched transactions); one drainer at a time, the batch's own pool gives the concurrency.
        self.on_due_many: Callable[[list[str]], None] | None = None
        self._due: list[str] = []
        self._draining = False
        self.active = True
        self._armed: dict[str, datetime] = {}  # key -> the moment it is armed for
        self._lock = threading.Lock()

    def activate(self) -> None:
        self.active = True

    def deactivate(self) -> None:
        # A follower must never run timers: the leader's copy of the same job would race it.
        self.active = False
        with self._lock:
            self._armed.clear()
            self._due.clear()
        self.scheduler.remove_all_jobs()

    def start(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def schedule(self, key: str, when: datetime) -> None:
        if not self.active:
            return  # the leader's due poller arms it on the replica that runs timers
        with self._lock:
            if self._armed.get(key) == when and self.scheduler.get_job(key) is not None:
                return  # already armed for that moment (the due poller re-arms every second)
            self._armed[key] = when
        self.scheduler.add_job(self._run, "date", run_date=when, args=(key, when), id=key, replace_existing=True)

    def _run(self, key: str, when: datetime) -> None:
        with self._lock:
            if self._armed.get(key) == when:
                del self._armed[key]
        if self.on_due_many is not None:
            self._drain(key)
            return
        if self.on_due is None:
            log.error("timer fired with nothing to wake", extra={"job": key})
            return
        _guarded(key, self.on_due)

    def _drain(self, key: str) -> None:
        """Queue the key; the first job to find no drainer running becomes it and hands over batches until empty."""
        with self._lock:
            self._due.append(key)
            if self._draining:
                return
            self._draining = True
        while True:
            with self._lock:
                batch, self._due = self._due[:MAX_BATCH], self._due[MAX_BATCH:]
                if not batch or not self.active:
                    self._draining = False
                    return
            try:
                self.on_due_many(batch)  # type: ignore[misc]
            except Exception:
                log.exception("timer batch failed", extra={"jobs": len(batch)})

    def cancel(self, key: str) -> None:
        with self._lock:
            self._armed.pop(key, None)
        try:
            self.scheduler.remove_job(key)
        except JobLookupError:
            pass

    def pending(self) -> int:
        return len(self.scheduler.get_jobs())

    def healthy(self) -> bool:
        return bool(self.scheduler.running)


def _guarded(key: str, on_due: Callable[[str], None]) -> None:
    try:
        on_due(key)
    except Exception:
        log.exception("timer job failed", extra={"job": key})
