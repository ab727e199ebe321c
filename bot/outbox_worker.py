"""The outbox's delivery workers: threads on every replica that claim due notices and send them to Slack."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from slack_sdk.errors import SlackApiError

from grants.outbox import CLAIM_LEASE, Failure
from grants.usecases import delivering
from grants.usecases.deps import Deps

log = logging.getLogger(__name__)

# Slack answers worth retrying: it is busy, down or slow. Anything else (not_in_channel, invalid_blocks,
# user_not_found on a DM) will not improve by waiting: audited and alerted at once.
TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


def classify(exc: Exception) -> Failure:
    """Slack's error as the outbox needs it; only the error's name is kept (a payload may echo a message)."""
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error") or "slack_error")
        status = exc.response.status_code
        if status == 429:
            headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
            after = headers.get("retry-after")
            retry_after = timedelta(seconds=float(after[0] if isinstance(after, list) else after)) if after else None
            return Failure(code, True, retry_after)
        return Failure(code, status >= 500 or code in TRANSIENT)
    return Failure(type(exc).__name__)  # connection errors, the database: worth another try


class OutboxWorker:
    """`threads` loops claiming and delivering; a commit kicks them awake, otherwise they poll every `poll` seconds
    (so rows written by another replica, retries and credential checks are picked up too)."""

    def __init__(
        self, deps: Deps, threads: int = 4, poll: float = 1.0, on_failure: Callable[[], None] = lambda: None,
        heartbeat: float = CLAIM_LEASE.total_seconds() / 3,
    ) -> None:  # fmt: skip
        self.deps, self.poll, self.on_failure, self.heartbeat = deps, poll, on_failure, heartbeat
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self._wake = threading.Condition()
        self._kicks = 0
        self._busy = 0
        self._held = 0  # batches of revocations running: delivery waits for them
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), name=f"outbox-{i}", daemon=True) for i in range(threads)]
        self._threads.append(threading.Thread(target=self._renew, name="outbox-heartbeat", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def kick(self) -> None:
        with self._wake:
            self._kicks += 1
            self._wake.notify_all()

    @contextmanager
    def yielding(self) -> Iterator[None]:
        """Deliveries wait while this runs (a burst of revocations): the security action is never queued behind chat
        messages for the interpreter or the database's one writer. Its own messages are in the outbox, sent after."""
        with self._wake:
            self._held += 1
        try:
            yield
        finally:
            with self._wake:
                self._held -= 1
                self._kicks += 1
                self._wake.notify_all()

    def stop(self) -> None:
        self._stopping.set()
        self.kick()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)

    def _classify(self, exc: Exception) -> Failure:
        self.on_failure()
        return classify(exc)

    def _run(self, index: int) -> None:
        worker = f"{self.name}-{index}"
        while not self._stopping.is_set():
            with self._wake:
                while self._held and not self._stopping.is_set():
                    self._wake.wait(self.poll)
                seen = self._kicks
            try:
                with self._counted():
                    claimed = delivering.run_once(self.deps, worker, self._classify, limit=5)
            except Exception:
                log.exception("outbox delivery round failed")  # e.g. the database is down: the next round retries
                claimed = 0
            if claimed == 0:
                with self._wake:
                    if self._kicks == seen and not self._stopping.is_set():
                        self._wake.wait(self.poll)

    def _renew(self) -> None:
        """Keep this process's claims alive while their deliveries run; a killed process stops renewing them."""
        while not self._stopping.wait(self.heartbeat):
            try:
                self.deps.store.renew_claims(f"{self.name}-", self.deps.clock.now())
            except Exception:
                log.exception("renewing outbox claims failed")

    def _counted(self) -> _Busy:
        return _Busy(self)

    def drain(self, timeout: float = 30) -> None:
        """Deliver everything due now (in the caller's thread too) and wait for the workers' rounds in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._counted():
                claimed = delivering.run_once(self.deps, f"{self.name}-drain", self._classify)
            with self._wake:
                idle = self._busy == 0
            if claimed == 0 and idle:
                with self._counted():
                    if delivering.run_once(self.deps, f"{self.name}-drain", self._classify) == 0:
                        return
            elif claimed == 0:
                time.sleep(0.01)


class _Busy:
    def __init__(self, worker: OutboxWorker) -> None:
        self.worker = worker

    def __enter__(self) -> None:
        with self.worker._wake:
            self.worker._busy += 1

    def __exit__(self, *_: object) -> None:
        with self.worker._wake:
            self.worker._busy -= 1
