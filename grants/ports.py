"""The core's ports: what it needs from a clock, a store, a credential issuer, a notifier and timers."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from grants.audit import Anchor, AuditQuery
from grants.catalog import Catalog, Scope
from grants.changes import Change
from grants.credentials import CredentialHandle, CredentialStatus, IssuedCredential, IssueOrder, Orphan
from grants.domain import AuditEvent, Request, State
from grants.lifecycle import Event
from grants.outbox import Alert, News, Notice, OutboxStore


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, tz-aware UTC."""
        ...


class Store(OutboxStore, Protocol):
    """Requests, the audit trail and the outbox; every write of a request writes its audit event and its
    notices atomically."""

    def create(self, request: Request, event: AuditEvent, notices: Sequence[Notice] = ()) -> None:
        """Insert a new request with its event (and notices); raises AlreadyOpen when the requester already has one open
        for that scope (checked by the store itself, so concurrent twins cannot both get in)."""
        ...

    def save(self, request: Request, expected_version: int, event: AuditEvent | None, notices: Sequence[Notice] = ()) -> bool:
        """Compare-and-swap: write `request` (with its event and notices) only if the stored version is still
        `expected_version`."""
        ...

    def save_many(self, changes: Sequence[Change]) -> list[bool]:
        """Several compare-and-swaps in one transaction (a burst of expiries): each change is written with its event
        and notices only if its stored version is still the expected one; a lost CAS writes nothing of its own and
        does not undo the others. One flag per change, in order."""
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

    def count_requests(self, requester: str, since: datetime) -> int:
        """How many requests (of any state) this person made since `since`."""
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

    def event_rows(self, query: AuditQuery) -> Iterator[Sequence[Any]]:
        """The same events as stored rows (detail as its JSON text), so an export need not decode them."""
        ...

    def csv_lines(self, query: AuditQuery) -> Iterator[tuple[str, int]] | None:
        """CSV lines (chunk, rows in it) built by the database itself where it can; None where it cannot."""
        ...

    def chain_head(self) -> tuple[int, str]:
        """The last seq and hash the chain head records (0 and the genesis hash when empty)."""
        ...

    def audited_credential(self, request_id: str) -> str | None:
        """The credential ID the trail last recorded for this request (`issued`, `extended`, `reissued`): what the
        hash-chained trail says, as opposed to the request row, which an insider could rewrite."""
        ...

    def ssh_key(self, user: str) -> str | None:
        """The public key line `user` registered for ssh scopes, or None."""
        ...

    def set_ssh_key(self, user: str, public_key: str, fingerprint: str, at: datetime) -> None:
        """Register (or replace) `user`'s SSH public key."""
        ...

    def healthy(self) -> bool: ...


class CredentialIssuer(Protocol):
    """Every credential kind behind one port (grants.credentials.CredentialKinds dispatches by kind)."""

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        """Create a credential for exactly `scope`, living until `order.until`."""
        ...

    def revoke(self, handle: CredentialHandle, request_id: str) -> None:
        """End a credential; one that is already gone counts as success."""
        ...

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential: ...

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus: ...

    def sync(self, catalog: Catalog) -> list[str]: ...

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        """Credentials of kinds that do not end by themselves which no active grant holds (for reconcile)."""
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

    def tell_requester(self, request: Request, news: Event | News, **context: object) -> None: ...

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None:
        """Send the credential now, in the caller's thread; raises when it did not reach the person. It is never
        queued: the secret must not be at rest (the outbox holds only a check that replaces it if undelivered)."""
        ...

    def alert(self, alert: Alert, request_id: str | None = None, **context: object) -> None:
        """Tell the operators (the alert channel, the log); `context` holds IDs and plain text, never markup."""
        ...


class AuditAnchor(Protocol):
    """Somewhere outside the database that remembers the chain head: the bot may write it, not delete it."""

    def write(self, seq: int, hash_: str, version: int) -> None:
        """Write the head over the anchor's `version` (0: none yet), or raise AnchorMoved when it is no longer that."""
        ...

    def latest(self) -> Anchor | None:
        """The newest anchor, timed by the outside store's own clock; None when none was ever written."""
        ...


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
    """Wakes the service for a request at a moment; the adapter is built with what to call (`on_due`)."""

    def schedule(self, key: str, when: datetime) -> None:
        """Wake `key` (a request ID) at `when` (at once if past); a key scheduled again replaces the old job."""
        ...

    def cancel(self, key: str) -> None: ...

    def healthy(self) -> bool: ...
