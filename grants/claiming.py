"""The claim loop: threads that take due rows with a lease (see grants/adapters/claims.py), and the heartbeat."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def process_name() -> str:
    """This process's prefix for worker names: a heartbeat renews the leases of every name it starts."""
    host = socket.gethostname()
    if len(host) > 24:
        # Names are stored in 64 characters: a long pod name is shortened, keeping a digest of all of it, since
        # containers all run as pid 1 and two pods must never share a prefix (each would renew the other's leases).
        host = f"{host[:15]}~{hashlib.sha256(host.encode()).hexdigest()[:8]}"
    return f"{host}-{os.getpid()}"


class Wakeup:
    """What wakes a claim loop's threads at once: rung by whoever queued work (a commit, the timer), waited on by the
    loop. Built before both, so that neither needs the other to exist first."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.rings = 0

    def ring(self) -> None:
        with self.condition:
            self.rings += 1
            self.condition.notify_all()


class ClaimLoop:
    """`threads` loops each calling `round(worker)` (claim some due rows, run them, settle them; the number claimed).

    A kick wakes them at once (a commit queued work); otherwise they poll every `poll` seconds, which picks up rows
    written by other processes, retries and leases that lapsed. `renew(prefix)` runs every `heartbeat` seconds and
    extends this process's leases, so a long piece of work is never taken over while it runs; a killed or stopped
    process stops renewing, and another worker takes its rows once the lease lapses."""

    def __init__(
        self, label: str, round: Callable[[str], int], renew: Callable[[str], int], *,
        threads: int = 4, poll: float = 1.0, heartbeat: float = 10 / 3, wakeup: Wakeup | None = None,
        defer_to: ClaimLoop | None = None,
    ) -> None:  # fmt: skip
        self.label, self.round, self.renew, self.poll, self.heartbeat = label, round, renew, poll, heartbeat
        self.name = process_name()
        self.wakeup = wakeup or Wakeup()
        self._wake = self.wakeup.condition
        self._busy = 0
        self._behind: set[int] = set()  # the threads whose last round claimed something: there is a backlog
        # A loop whose work must never wait behind this one's (the due work's revocations, for the outbox's chat
        # messages): while it has a backlog in this process, this loop's threads hold back (see `_run`).
        self.defer_to = defer_to
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"{label}-{i}", daemon=True) for i in range(threads)
        ] + [threading.Thread(target=self._renew, name=f"{label}-heartbeat", daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def kick(self) -> None:
        self.wakeup.ring()

    def stop(self) -> None:
        self._stopping.set()
        self.kick()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)

    def behind(self) -> bool:
        """True while a round of this loop found work (its threads are working a backlog, e.g. a burst of expiries)."""
        with self._wake:
            return bool(self._behind)

    def wait_caught_up(self, timeout: float) -> None:
        with self._wake:
            if self._behind and not self._stopping.is_set():
                self._wake.wait(timeout)

    def _run(self, index: int) -> None:
        worker = f"{self.name}-{self.label}-{index}"
        while not self._stopping.is_set():
            first = self.defer_to
            if first is not None and first.behind():
                # Not a second path: the same rounds, later. Two cores and one SQLite writer spent on chat messages
                # while grants fall due would make every revocation wait for them.
                first.wait_caught_up(self.poll)
                continue
            with self._wake:
                seen = self.wakeup.rings
            try:
                with self._counted():
                    claimed = self.round(worker)
            except Exception:
                log.exception("%s round failed", self.label)  # e.g. the database is down: the next round retries
                claimed = 0
            with self._wake:
                if claimed:
                    self._behind.add(index)
                elif index in self._behind:
                    self._behind.discard(index)
                    if not self._behind:
                        self._wake.notify_all()  # loops deferring to this one go on
            if claimed == 0:
                with self._wake:
                    if self.wakeup.rings == seen and not self._stopping.is_set():
                        self._wake.wait(self.poll)

    def _renew(self) -> None:
        while not self._stopping.wait(self.heartbeat):
            try:
                self.renew(f"{self.name}-")
            except Exception:
                log.exception("renewing %s claims failed", self.label)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        with self._wake:
            self._busy += 1
        try:
            yield
        finally:
            with self._wake:
                self._busy -= 1

    def drain(self, timeout: float = 30) -> None:
        """Run everything due now (in the caller's thread too) and wait for the rounds in flight."""
        deadline = time.monotonic() + timeout
        worker = f"{self.name}-{self.label}-drain"
        while time.monotonic() < deadline:
            with self._counted():
                claimed = self.round(worker)
            with self._wake:
                idle = self._busy == 0
            if claimed == 0 and idle:
                with self._counted():
                    if self.round(worker) == 0:
                        return
            elif claimed == 0:
                time.sleep(0.01)
