"""Small honest fakes of the core's ports, for unit tests of the service."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from grants.audit import GENESIS_HASH, AuditQuery, chained
from grants.catalog import Scope
from grants.domain import AuditEvent, CredentialError, IssuedCredential, Request, State


class FakeClock:
    def __init__(self, start: datetime | None = None):
        self.current = start or datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class FakeStore:
    def __init__(self) -> None:
        self.requests: dict[str, Request] = {}
        self.audit: list[AuditEvent] = []
        self.lock = threading.Lock()
        self.refs: dict[str, list[tuple[str, str, int | None]]] = {}

    def create(self, request: Request, event: AuditEvent) -> None:
        with self.lock:
            assert request.id not in self.requests
            self.requests[request.id] = request
            self._append(event)

    def save(self, request: Request, expected_version: int, event: AuditEvent | None) -> bool:
        with self.lock:
            if self.requests[request.id].version != expected_version:
                return False
            self.requests[request.id] = request
            if event is not None:
                self._append(event)
            return True

    def get(self, request_id: str) -> Request | None:
        return self.requests.get(request_id)

    def find(self, *, states: Collection[State] | None = None, requester: str | None = None,
             scopes: Collection[str] | None = None, limit: int | None = None) -> list[Request]:  # fmt: skip
        found = [
            r for r in sorted(self.requests.values(), key=lambda r: r.created_at, reverse=True)
            if (states is None or r.state in states) and (requester is None or r.requester == requester)
            and (scopes is None or r.scope in scopes)
        ]  # fmt: skip
        return found[:limit] if limit else found

    def due(self, horizon: datetime) -> list[Request]:
        return sorted(
            (r for r in self.requests.values() if r.wake_at is not None and r.wake_at <= horizon), key=lambda r: r.wake_at
        )

    def open_reviews(self) -> list[Request]:
        return [r for r in self.requests.values() if r.review_state == "open"]

    def record(self, event: AuditEvent) -> AuditEvent:
        with self.lock:
            return self._append(event)

    def _append(self, event: AuditEvent) -> AuditEvent:
        prev = self.audit[-1].hash if self.audit else GENESIS_HASH
        linked = chained(event, len(self.audit) + 1, prev or GENESIS_HASH)
        self.audit.append(linked)
        return linked

    def events(self, query: AuditQuery) -> Iterator[AuditEvent]:
        for e in list(self.audit):
            if (query.since and e.at < query.since) or (query.until and e.at >= query.until):
                continue
            if query.scope and e.scope != query.scope:
                continue
            if query.user and query.user not in (e.actor, e.subject):
                continue
            yield e

    def add_message_ref(self, request_id: str, channel: str, ts: str, step: int | None = None) -> None:
        self.refs.setdefault(request_id, []).append((channel, ts, step))

    def message_refs(self, request_id: str) -> list[tuple[str, str, int | None]]:
        return self.refs.get(request_id, [])

    def healthy(self) -> bool:
        return True

    def names(self) -> list[str]:
        return [e.event for e in self.audit]


class FakeIssuer:
    def __init__(self) -> None:
        self.live: dict[str, tuple[str, list[str]]] = {}  # accessor -> (request id, policies)
        self.issued = 0
        self.down = False

    def issue(self, request: Request, scope: Scope) -> IssuedCredential:
        if self.down:
            raise CredentialError("vault unreachable")
        self.issued += 1
        accessor = f"acc-{self.issued}"
        self.live[accessor] = (request.id, list(scope.policies))
        return IssuedCredential(accessor=accessor, delivery=f"wrap-secret-{self.issued}", unwrap_hint="bao unwrap")

    def revoke(self, accessor: str) -> None:
        if self.down:
            raise CredentialError("vault unreachable")
        self.live.pop(accessor, None)

    def healthy(self) -> bool:
        return not self.down


@dataclass
class FakeNotifier:
    sent: list[tuple[str, object]] = field(default_factory=list)
    broken: bool = False

    def _log(self, kind: str, payload: object) -> None:
        if self.broken:
            raise RuntimeError("slack is down")
        self.sent.append((kind, payload))

    def request_opened(self, request: Request, approvers: frozenset[str]) -> None:
        self._log("opened", (request.id, sorted(approvers)))

    def approvers_notice(self, request: Request, approvers: frozenset[str], kind: str) -> None:
        self._log("notice", (request.id, sorted(approvers), kind))

    def request_changed(self, request: Request) -> None:
        self._log("changed", (request.id, request.state.value))

    def tell_requester(self, request: Request, news: str, **context: object) -> None:
        self._log("told", (request.id, news))

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None:
        self._log("credential", (request.id, credential.accessor))

    def alert(self, text: str) -> None:
        self._log("alert", text)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.sent]


class FakeTimer:
    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.jobs: dict[str, tuple[datetime, Callable[[], None]]] = {}

    def schedule(self, key: str, when: datetime, action: Callable[[], None]) -> None:
        self.jobs[key] = (when, action)

    def cancel(self, key: str) -> None:
        self.jobs.pop(key, None)

    def healthy(self) -> bool:
        return True

    def advance(self, delta: timedelta) -> None:
        """Move the clock and run every job that came due, in time order."""
        self.clock.advance(delta)
        while True:
            due = sorted((when, key) for key, (when, _) in self.jobs.items() if when <= self.clock.now())
            if not due:
                return
            key = due[0][1]
            _, action = self.jobs.pop(key)
            action()
