"""Health checks for `/healthz`: each one time-boxed and the results cached, so the answer comes within a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping


class CachedHealth:
    """Runs each check in its own thread and waits at most `timeout` for all of them; a check that has not
    answered by then counts as down. Results are kept for `ttl` seconds, so a burst of probes costs one round."""

    def __init__(self, checks: Mapping[str, Callable[[], bool]], ttl: float = 2.0, timeout: float = 0.8):
        self.checks, self.ttl, self.timeout = dict(checks), ttl, timeout
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, bool]] | None = None
        self._running: dict[str, threading.Thread] = {}  # a hung check is never started a second time
        self._results: dict[str, bool] = {}

    def __call__(self) -> dict[str, bool]:
        with self._lock:  # one refresh at a time; the others wait at most `timeout` and reuse it
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl:
                return dict(self._cached[1])
            deadline = time.monotonic() + self.timeout
            for name, check in self.checks.items():
                if name not in self._running or not self._running[name].is_alive():
                    self._results.pop(name, None)
                    thread = threading.Thread(target=self._run, args=(name, check), name=f"health-{name}", daemon=True)
                    self._running[name] = thread
                    thread.start()
            for thread in self._running.values():
                thread.join(max(0.0, deadline - time.monotonic()))
            state = {name: self._results.get(name, False) and not self._running[name].is_alive() for name in self.checks}
            self._cached = (time.monotonic(), state)
            return dict(state)

    def _run(self, name: str, check: Callable[[], bool]) -> None:
        try:
            self._results[name] = bool(check())
        except Exception:
            self._results[name] = False  # a check that raises is down, and /healthz still answers
