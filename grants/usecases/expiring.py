"""Bursts of wake-ups: grants due together are revoked concurrently (bounded) and recorded in batched transactions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from grants.domain import Request, State
from grants.lifecycle import Event
from grants.usecases import granting, timing
from grants.usecases.deps import Deps

# Revocations of one burst in flight at once: Vault's calls overlap, the interpreter is not flooded.
CONCURRENCY = 8
# Records written per transaction: one commit (one fsync, one turn of SQLite's single writer) for many grants,
# while a transaction stays short enough not to hold up an ack's write for long.
BATCH = 100

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def bounded_map(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`map` on a shared pool of CONCURRENCY threads (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="jitbot-burst")
        pool = _pool
    return list(pool.map(work, items))


def wake_many(deps: Deps, request_ids: Sequence[str], run: Callable[..., Any] = bounded_map) -> None:
    """Timers fired for these requests: the expiries among them are ended as a batch, everything else is woken one
    by one (concurrently) exactly as a single timer would. Each wake re-reads the database, so duplicates are harmless."""
    now = deps.clock.now()
    expiring: list[Request] = []
    others: list[str] = []
    for request_id in dict.fromkeys(request_ids):
        request = deps.store.get(request_id)
        if _expires_now(request, now):
            assert request is not None
            expiring.append(request)
        else:
            others.append(request_id)
    for start in range(0, len(expiring), BATCH):
        try:
            granting.end_many(deps, expiring[start : start + BATCH], Event.EXPIRED, "system", run)
        except Exception:  # the database failed: these stay active and due; reconcile re-arms them (revoke is idempotent)
            log.exception("ending a batch of expired grants failed; they are retried")
    list(run(lambda request_id: _guarded(deps, request_id), others))  # `map` is lazy: consume it


def _expires_now(request: Request | None, now: Any) -> bool:
    return (
        request is not None
        and request.state is State.ACTIVE
        and request.grant is not None
        and request.wake_at is not None
        and now >= request.wake_at
        and now >= request.grant.expires_at
    )


def _guarded(deps: Deps, request_id: str) -> None:
    try:
        timing.wake(deps, request_id)
    except Exception:  # one request's failure must not stop the rest of the burst; its timer or reconcile retries
        log.exception("wake-up failed", extra={"request_id": request_id})
