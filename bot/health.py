"""Health probes `/livez`, `/readyz`, `/healthz` for any jitbot process; checks time-boxed and cached (answers within a second)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any


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


HEALTHZ = (
    "database",
    "vault",
    "scheduler",
    "anchor",
)  # /healthz: its contract, plus the audit anchor (issue 15); /readyz: every check


class Probes:
    """`/livez`, `/readyz` and `/healthz` (GET and HEAD) for any jitbot process: give it that process's checks.

    /livez says only that the process answers: a liveness probe on it never restarts a replica because Vault or
    the database is down (a restart would not bring them back). /readyz is every check (database, Vault, Slack's
    workspace, a worker's claims: whatever the process was given), 503 while one is down, so traffic waits.
    /healthz stays as it was: database, Vault and scheduler (and the audit anchor), plus `info` (the role)."""

    def __init__(self, checks: Callable[[], Mapping[str, bool]], info: Callable[[], Mapping[str, str]] = dict):
        self.checks, self.info = checks, info

    def answer(self, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> list[bytes] | None:
        """The probe's response, or None when the request is not a probe."""
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD") or path not in ("/livez", "/readyz", "/healthz"):
            return None
        if path == "/livez":
            up, body = True, {"status": "ok"}
        else:
            state = dict(self.checks())
            if path == "/healthz":
                state = {name: state[name] for name in HEALTHZ if name in state}
            up = all(state.values())
            body = {name: ("ok" if ok else "down") for name, ok in state.items()}
            body |= dict(self.info()) if path == "/healthz" else {"status": "ok" if up else "unavailable"}
        data = json.dumps(body).encode()
        start_response(
            "200 OK" if up else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data))), ("Cache-Control", "no-store")],
        )
        return [] if method == "HEAD" else [data]  # HEAD: the same status and headers, no body

    def __call__(self, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """As a WSGI app of its own (a process that serves nothing else): anything but a probe is 404."""
        answer = self.answer(environ, start_response)
        if answer is None:
            start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", "22")])
            return [b'{"error": "not found"}']
        return answer
