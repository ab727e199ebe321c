"""Pacing our own Web API calls to Slack's published rate limits, so a burst (2,000 expiries, say) drains steadily
instead of provoking a storm of 429s. Nothing waits here: a call over its budget is refused at once the way Slack
refuses one (429 with Retry-After), so a notice goes back to its outbox row with that not-before time and no thread
(one that acks, issues or revokes) ever sleeps on Slack's behalf."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
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
        """Take one token if there is one (0.0); else how long until there is (nothing taken)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Pacer:
    """Token buckets per method and, for chat.postMessage, per channel; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
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

    def take(self, method: str, channel: str = "") -> float:
        """0.0 when this call fits the budget now (and is counted); else the seconds until it would."""
        with self._lock:
            bucket = self._bucket(method, channel)
            return bucket.take(self._clock()) if bucket is not None else 0.0


class Unpaced(Pacer):
    """No budget at all: for a stand-in of Slack that has no limits to keep (JITBOT_SLACK_PACING=false)."""

    def take(self, method: str, channel: str = "") -> float:
        return 0.0


class PacedWebClient(WebClient):
    """A WebClient whose calls over their share of Slack's rate limits are refused at once, as Slack's 429 would be."""

    def __init__(self, *args: Any, pacer: Pacer | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pacer = pacer or Pacer()

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        body = kwargs.get("json") or kwargs.get("data") or kwargs.get("params") or {}
        delay = self.pacer.take(api_method, str(body.get("channel") or "") if isinstance(body, dict) else "")
        if delay > 0:
            raise paced(self, api_method, delay)
        return super().api_call(api_method, **kwargs)


def paced(client: WebClient, method: str, delay: float) -> SlackApiError:
    """The 429 Slack would answer, made here: every caller already handles that one (the outbox retries after it)."""
    response = SlackResponse(
        client=client, http_verb="POST", api_url=f"{client.base_url}{method}", req_args={},
        data={"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(math.ceil(delay))}, status_code=429,
    )  # fmt: skip
    return SlackApiError(f"{method} is over Slack's published rate here; retry in {delay:.1f} s", response)  # type: ignore[no-untyped-call]
