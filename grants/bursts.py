"""Bursts of one refusal (per person, rule and what it was about): the first is audited in full, the rest of the burst counted in one event when it ends."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class Burst:
    first_at: datetime
    last_at: datetime
    repeated: int = 0


class Bursts:
    """Per key (a person, a rule, what it was about): is this refusal the first of a burst, and which bursts have ended?

    A person hammering a limit would otherwise write one audit row per attempt: the trail stays complete (the
    count is written) without letting anyone fill it."""

    def __init__(self, quiet: timedelta = timedelta(minutes=1)):
        self.quiet = quiet  # a burst ends after this long without a repeat
        self._open: dict[tuple[str, ...], Burst] = {}
        self._lock = threading.Lock()

    def first(self, key: tuple[str, ...], now: datetime) -> bool:
        with self._lock:
            burst = self._open.get(key)
            if burst is not None and now - burst.last_at < self.quiet:
                burst.repeated += 1
                burst.last_at = now
                return False
            self._open[key] = Burst(now, now)
            return True

    def ended(self, now: datetime) -> list[tuple[tuple[str, ...], Burst]]:
        """Bursts quiet for long enough, removed; those with repeats need their count written."""
        with self._lock:
            done = [(key, b) for key, b in self._open.items() if now - b.last_at >= self.quiet]
            for key, _ in done:
                del self._open[key]
        return [(key, b) for key, b in done if b.repeated]
