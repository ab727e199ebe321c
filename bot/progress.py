"""Progress of a long export on a terminal: rows, rate and time left on stderr, nothing in pipes and CI."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

EVERY = 0.5  # seconds between redraws


class ProgressWriter:
    """Wraps the export's output stream: passes every write through unchanged (the export stays byte-identical)
    and counts the lines written, redrawing one status line on `screen` at most every half second."""

    def __init__(
        self, out: IO[str], screen: IO[str], total: int | None, header_lines: int = 0, clock: Callable[[], float] = time.monotonic
    ):
        self.out, self.screen, self.total, self.header_lines, self.clock = out, screen, total, header_lines, clock
        self.lines = 0
        self.started = clock()
        self._drawn_at: float | None = None
        self._writes = 0

    def write(self, text: str) -> int:
        written = self.out.write(text)
        self.lines += text.count("\n")
        self._writes += 1
        # Looking at the clock on every one of a million row writes would cost more than the count.
        if self._drawn_at is None or (self._writes % 256 == 0 and self.clock() - self._drawn_at >= EVERY):
            self.draw()
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.out, name)  # flush, newline and friends go to the real stream

    @property
    def rows(self) -> int:
        return max(0, self.lines - self.header_lines)

    def draw(self, final: bool = False) -> None:
        now = self.clock()
        self._drawn_at = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.rows / elapsed
        parts = [f"{self.rows:,} rows" + (f" of {self.total:,}" if self.total else ""), f"{rate:,.0f} rows/s"]
        if final:
            parts.append(f"done in {_clock_text(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"{_clock_text(max(0.0, (self.total - self.rows) / rate))} left")
        self.screen.write("\r\x1b[Kexporting: " + ", ".join(parts) + ("\n" if final else ""))
        self.screen.flush()


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"
