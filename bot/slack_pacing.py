"""Pacing our own Web API calls to Slack's published rate limits, so a burst (2,000 expiries, say) drains steadily
instead of provoking a storm of 429s. Only delivery threads wait here; revocations never pass through Slack."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.web import SlackResponse

# Slack's tiers (requests per minute, per workspace) for the methods the bot calls, and its special limit for
# chat.postMessage: about one message per second per channel, short bursts tolerated.
PER_MINUTE = {
    "chat.update": 50,  # Tier 3
    "conversations.open": 50,  # Tier 3
    "views.publish": 100,  # Tier 4
    "usergroups.users.list": 20,  # Tier 2
    "files.getUploadURLExternal": 20,  # Tier 2 (audit exports)
    "files.completeUploadExternal": 20,
}
POST_PER_SECOND_PER_CHANNEL = 1.0
# Buckets start full, so a quiet bot answers at once and only a sustained flood waits: ten posts in a channel, a
# minute's budget for a tiered method (Slack tolerates such bursts).
POST_BURST = 10


@dataclass
class Bucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take one token; how long to wait before the call may go (0: at once)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Pacer:
    """Token buckets per method and, for chat.postMessage, per channel; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self._clock, self._sleep = clock, sleep
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, method: str, channel: str) -> Bucket | None:
        if method == "chat.postMessage" and channel:
            key, rate, burst = (method, channel), POST_PER_SECOND_PER_CHANNEL, POST_BURST
        elif method in PER_MINUTE:
            key, rate, burst = (method, ""), PER_MINUTE[method] / 60, PER_MINUTE[method]
        else:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(rate, float(burst), float(burst), self._clock())
        return bucket

    def wait(self, method: str, channel: str = "") -> float:
        """Block until this call fits the budget; the seconds waited."""
        with self._lock:
            bucket = self._bucket(method, channel)
            delay = bucket.take(self._clock()) if bucket is not None else 0.0
        if delay > 0:
            self._sleep(delay)
        return delay


class Unpaced(Pacer):
    """No waiting at all: for a stand-in of Slack that has no limits to keep (JITBOT_SLACK_PACING=false)."""

    def wait(self, method: str, channel: str = "") -> float:
        return 0.0


class PacedWebClient(WebClient):
    """A WebClient whose calls first wait for their share of Slack's rate limits (then retry 429s as usual)."""

    def __init__(self, *args: Any, pacer: Pacer | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pacer = pacer or Pacer()

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        body = kwargs.get("json") or kwargs.get("data") or kwargs.get("params") or {}
        self.pacer.wait(api_method, str(body.get("channel") or "") if isinstance(body, dict) else "")
        return super().api_call(api_method, **kwargs)
