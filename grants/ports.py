"""The core's ports: what it needs from a clock, a store, a credential issuer, a notifier and timers."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from typing import Protocol

from grants.audit import AuditQuery
from grants.catalog import Scope
from grants.domain import AuditEvent, IssuedCredential, Request, State


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, tz-aware UTC."""
        ...


class Store(Protocol):
    """Requests and the audit trail; every write of a request writes its audit event atomically."""

    def create(self, request: Request, event: AuditEvent) -> None: ...

    def save(self, request: Request, expected_version: int, event: AuditEvent | None) -> bool:
        """Compare-and-swap: write `request` only if the stored version is still `expected_version`."""
        ...

    def get(self, request_id: str) -> Request | None: ...

    def find(
        self,
        *,
        states: Collection[State] | None = None,
        requester: str | None = None,
        scopes: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[Request]: ...

    def due(self, horizon: datetime) -> list[Request]:
        """Requests whose `wake_at` comes before `horizon`, soonest first."""
        ...

    def open_reviews(self) -> list[Request]:
        """Break-glass grants whose post-hoc review is still open."""
        ...

    def record(self, event: AuditEvent) -> AuditEvent:
        """Append one audit event that changes no request (rejections, exports, failures)."""
        ...

    def events(self, query: AuditQuery) -> Iterator[AuditEvent]:
        """Audit events in `seq` order, streamed."""
        ...

    def healthy(self) -> bool: ...


class CredentialIssuer(Protocol):
    def issue(self, request: Request, scope: Scope) -> IssuedCredential:
        """Create a credential for exactly `scope`, living exactly `request.duration`."""
        ...

    def revoke(self, accessor: str) -> None:
        """End a credential; one that is already gone counts as success."""
        ...

    def healthy(self) -> bool: ...


class Notifier(Protocol):
    """Tells people what happened; failures here never undo a decision."""

    def request_opened(self, request: Request, approvers: frozenset[str]) -> None: ...

    def approvers_notice(self, request: Request, approvers: frozenset[str], kind: str) -> None:
        """A reminder, escalation, break-glass notice, review reminder or extension request for approvers."""
        ...

    def request_changed(self, request: Request) -> None:
        """Re-render every message about `request` from its current state."""
        ...

    def tell_requester(self, request: Request, news: str, **context: object) -> None: ...

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None: ...

    def alert(self, text: str) -> None: ...


class LeaderLock(Protocol):
    """At most one replica holds it; only the holder runs the timers."""

    def acquire(self) -> bool:
        """Try to take the lock without waiting; True when this replica holds it now."""
        ...

    def holding(self) -> bool:
        """Still held (the connection or file that carries it is alive)."""
        ...

    def release(self) -> None: ...


class Timer(Protocol):
    def schedule(self, key: str, when: datetime, action: Callable[[], None]) -> None:
        """Run `action` at `when` (at once if past); a key scheduled again replaces the old job."""
        ...

    def cancel(self, key: str) -> None: ...

    def healthy(self) -> bool: ...
