"""The outbox's delivery workers: threads on every replica that claim due notices and send them to Slack."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from slack_sdk.errors import SlackApiError

from grants.claiming import ClaimLoop, Wakeup
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


class OutboxWorker(ClaimLoop):
    """The outbox's claim loop: `threads` threads claiming due notices and delivering them (see ClaimLoop)."""

    def __init__(
        self, deps: Deps, threads: int = 4, poll: float = 1.0, on_failure: Callable[[], None] = lambda: None,
        heartbeat: float = CLAIM_LEASE.total_seconds() / 3, wakeup: Wakeup | None = None, defer_to: ClaimLoop | None = None,
    ) -> None:  # fmt: skip
        self.deps, self.on_failure = deps, on_failure
        super().__init__(
            "outbox",
            lambda worker: delivering.run_once(deps, worker, self._classify, limit=5),
            lambda prefix: deps.outbox.renew_claims(prefix, deps.clock.now()),
            threads=threads,
            poll=poll,
            heartbeat=heartbeat,
            wakeup=wakeup,
            defer_to=defer_to,
        )

    def _classify(self, exc: Exception) -> Failure:
        self.on_failure()
        return classify(exc)
