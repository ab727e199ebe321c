"""Runs what is due on every worker: request rows claimed with a lease, the claim loop woken at the next due time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from grants.claiming import ClaimLoop, Wakeup
from grants.ports import Clock, DueClaims, Timer

log = logging.getLogger(__name__)
RETRY_AFTER_FAILURE = timedelta(seconds=5)  # a request whose wake-up raised stays unclaimed (not a hot loop on a broken row)


class DueWork(ClaimLoop):
    """Grant ends, reminders, warnings, escalations, timeouts, reviews, retries: each round claims due requests (a
    lease on the row, so no other worker runs them meanwhile), wakes each one (`wake`: re-reads it and does what is
    due, a compare-and-swap) and lets go. A burst is the same rounds taking many rows, on `threads` threads. When
    nothing is due, the timer is armed for the next deadline the database knows of (any worker may have written it);
    the poll catches leases that lapsed (a worker that died or stopped) and deadlines written elsewhere."""

    def __init__(
        self, due: DueClaims, wake: Callable[[str], None], timer: Timer, clock: Clock, *,
        threads: int = 4, batch: int = 8, poll: float = 1.0, heartbeat: float = 10 / 3, wakeup: Wakeup | None = None,
    ) -> None:  # fmt: skip
        self.due, self.wake, self.timer, self.clock, self.batch = due, wake, timer, clock, batch
        # What each worker finished, let go of in its next claim's transaction: a round that claimed something is
        # followed at once by another, so the lease ends a claim later, and each round costs one write, not two.
        self._finished: dict[str, list[str]] = {}
        super().__init__("due", self._round, lambda prefix: due.renew(prefix, clock.now()), threads=threads, poll=poll,
                         heartbeat=heartbeat, wakeup=wakeup)  # fmt: skip

    def _round(self, worker: str) -> int:
        claimed = self.due.claim(worker, self.clock.now(), self.batch, self._finished.pop(worker, []))
        done: list[str] = []
        for request_id in claimed:
            try:
                self.wake(request_id)
            except Exception:  # e.g. the database went away mid-way: nobody retries it for a few seconds
                log.exception("wake-up failed; retried shortly", extra={"request_id": request_id})
                self.due.let_go(worker, [request_id], self.clock.now() + RETRY_AFTER_FAILURE)
            else:
                done.append(request_id)
        if done:
            self._finished[worker] = done
        if not claimed:
            when = self.due.next_due(self.clock.now())
            if when is not None:
                self.timer.schedule("due", when)
        return len(claimed)

    def stop(self) -> None:
        super().stop()
        for worker, done in list(self._finished.items()):  # what the last rounds finished: free for any worker now
            try:
                self.due.let_go(worker, done)
            except Exception:  # the leases lapse by themselves
                log.exception("letting go of finished requests failed")
        self._finished.clear()
