"""APScheduler as the timer: it wakes this process's claim loop at the next due time; the database stays the truth."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)
JOB = "next-due"


class SchedulerTimer:
    """Implements the Timer port with one job: at the soonest moment anything is due, `on_due` (the claim loop's
    kick) runs. Which rows are due and which worker runs them is the database's to say, so a late, lost or extra
    wake-up costs nothing but a round; the claim loop re-arms the job for the next deadline it reads."""

    def __init__(self, on_due: Callable[[], None] = lambda: None):
        self.on_due = on_due
        # misfire_grace_time=None: a wake-up that came due while we were busy still runs (APScheduler's default of
        # 1 s would silently drop it); coalesce: once, not N times.
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone="UTC",
        )
        self._next: datetime | None = None  # when the job will fire; None once it has
        self._lock = threading.Lock()

    def start(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def schedule(self, key: str, when: datetime) -> None:
        with self._lock:
            if not self.scheduler.running or (self._next is not None and self._next <= when):
                return  # a web process runs nothing due; or armed for something sooner, whose round arms the next
            self._next = when
            self.scheduler.add_job(self._fire, "date", run_date=when, id=JOB, replace_existing=True)

    def _fire(self) -> None:
        with self._lock:
            self._next = None
        try:
            self.on_due()
        except Exception:
            log.exception("waking the claim loop failed")

    def cancel(self, key: str) -> None:
        """Nothing to do: a wake-up that finds nothing due costs one query."""

    def armed_for(self) -> datetime | None:
        """When the job fires next (None: not armed)."""
        with self._lock:
            return self._next

    def healthy(self) -> bool:
        return bool(self.scheduler.running)
