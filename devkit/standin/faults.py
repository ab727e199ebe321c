"""Fault injection: chosen endpoints answer HTTP errors or rate limits, once, a few times, or until healed."""

from __future__ import annotations

from dataclasses import dataclass

from devkit.standin.state import StandInState
from devkit.standin.wire import Reply, json_reply

_STATUS_ERRORS = {500: "internal_error", 502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}


@dataclass
class Fault:
    method: str | None  # None: every endpoint
    status: int
    retry_after: int | None
    remaining: int | None  # None: until heal()
    error: str | None = None  # the `error` of {"ok": false}; None: named after the status


class FaultInjection(StandInState):
    """fail_next / rate_limit_next / fail_all / heal; the routing asks take_fault() before answering."""

    def fail_next(self, method: str | None, status: int = 500, count: int = 1, *, error: str | None = None) -> None:
        """The next `count` requests to `method` ("chat.postMessage", "upload", "respond"; None: any) answer HTTP `status`.

        With `error`, the answer is {"ok": false, "error": error}: e.g. status=200, error="expired_trigger_id" is
        what Slack answers views.open when the form opens more than 3 s after the command or click."""
        with self._lock:
            if count > 0:
                self._next_faults.append(Fault(method, status, None, count, error))

    def rate_limit_next(self, method: str | None, retry_after: int = 1, count: int = 1) -> None:
        """The next `count` requests to `method` answer 429 with Retry-After and {"ok": false, "error": "ratelimited"}."""
        with self._lock:
            if count > 0:
                self._next_faults.append(Fault(method, 429, retry_after, count))

    def fail_all(self, method: str | None = None, status: int = 503) -> None:
        """Every request to `method` (None: every endpoint) answers HTTP `status` until heal()."""
        with self._lock:
            self._standing_faults.append(Fault(method, status, 1 if status == 429 else None, None))

    def heal(self) -> None:
        """Clear every injected fault."""
        with self._lock:
            self._next_faults.clear()
            self._standing_faults.clear()

    def _take_fault(self, method: str) -> Fault | None:
        for faults in (self._next_faults, self._standing_faults):
            for fault in faults:
                if fault.method in (None, method):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            faults.remove(fault)
                    return fault
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> Reply:
        if fault.status == 429:
            return json_reply({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(fault.retry_after or 1)})
        return json_reply({"ok": False, "error": fault.error or _STATUS_ERRORS.get(fault.status, "fatal_error")}, fault.status)
