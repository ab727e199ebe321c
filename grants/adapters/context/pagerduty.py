"""PagerDuty's REST API as an `OnCallSource`: `GET /oncalls` for a schedule, cached for a short while."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import requests

from grants.oncall import OnCallUnavailable, Shift


class PagerDutyOnCall:
    """Plain HTTP (the official client refuses a base URL that is not https, and a stand-in on loopback is not)."""

    def __init__(self, url: str, token: str, cache_seconds: float = 30.0, timeout: float = 5.0):
        self.url, self.timeout, self.cache_seconds = url.rstrip("/"), timeout, cache_seconds
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Token token={token}",
                "Accept": "application/vnd.pagerduty+json;version=2",
                "Content-Type": "application/json",
            }
        )
        self._cache: dict[str, tuple[float, list[Shift]]] = {}
        self._lock = threading.Lock()

    def on_call(self, schedule: str) -> list[Shift]:
        with self._lock:
            cached = self._cache.get(schedule)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        shifts = self._ask(schedule)  # a failure is not cached: the next lookup asks again
        with self._lock:
            self._cache[schedule] = (time.monotonic(), shifts)
        return shifts

    def _ask(self, schedule: str) -> list[Shift]:
        params: dict[str, str | int] = {"schedule_ids[]": schedule, "time_zone": "UTC", "limit": 100}
        try:
            response = self.session.get(f"{self.url}/oncalls", params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise OnCallUnavailable(f"PagerDuty did not answer ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise OnCallUnavailable(f"PagerDuty answered {response.status_code}")
        try:
            entries = response.json()["oncalls"]
            return [_shift(entry, schedule) for entry in entries if (entry.get("schedule") or {}).get("id") == schedule]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OnCallUnavailable(f"PagerDuty answered something unexpected ({type(exc).__name__})") from None


def _shift(entry: dict[str, Any], schedule: str) -> Shift:
    return Shift(
        user=str(entry["user"]["id"]),
        user_name=str(entry["user"].get("summary", "")),
        schedule=schedule,
        escalation_level=int(entry["escalation_level"]),
        start=_time(entry.get("start")),
        end=_time(entry.get("end")),
    )


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None
