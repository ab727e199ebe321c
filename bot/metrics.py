"""Prometheus metrics, derived from the audit events and the credential calls; served at GET /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from grants.audit import AuditQuery
from grants.catalog import Catalog, Scope
from grants.credentials import CredentialError, CredentialHandle, CredentialStatus, IssuedCredential, IssueOrder, Orphan
from grants.domain import AuditEvent, Request
from grants.lifecycle import Event, State
from grants.outbox import Entry, Notice
from grants.ports import CredentialIssuer, Store

log = logging.getLogger("jitbot.audit")
T = TypeVar("T")
DECISIONS = frozenset({Event.APPROVED, Event.DENIED})
OUTCOMES = frozenset({Event.EXPIRED, Event.REVOKED, Event.DENIED, Event.CANCELLED, Event.TIMED_OUT, Event.ISSUE_FAILED})
FAILURES = frozenset({Event.ISSUE_FAILED, Event.REVOKE_FAILED, Event.REJECTED})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("jitbot_audit_events", "Audit events written, by event name", ["event"], registry=self.registry)
        self.decisions = Counter("jitbot_decisions", "Approver decisions", ["decision"], registry=self.registry)
        self.outcomes = Counter(
            "jitbot_request_outcomes", "Requests that reached a final state", ["outcome"], registry=self.registry
        )
        self.failures = Counter("jitbot_failures", "Failures by kind", ["kind"], registry=self.registry)
        self.active = Gauge("jitbot_active_grants", "Grants active now", registry=self.registry)
        buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
        self.issue_seconds = Histogram("jitbot_issue_seconds", "Vault issue latency", registry=self.registry, buckets=buckets)
        self.revoke_seconds = Histogram("jitbot_revoke_seconds", "Vault revoke latency", registry=self.registry, buckets=buckets)
        self.lag = Histogram(
            "jitbot_revocation_lag_seconds",
            "Actual revocation time minus expiry",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300),
        )
        self.stream_behind = Gauge(
            "jitbot_audit_stream_behind_events", "Audit events the sink has not taken yet", ["sink"], registry=self.registry
        )
        self.stream_lag = Gauge(
            "jitbot_audit_stream_lag_seconds",
            "Age of the oldest audit event the sink has not taken",
            ["sink"],
            registry=self.registry,
        )
        self.anchor_up = Gauge(
            "jitbot_audit_anchor_up",
            "1 when the anchor in Vault vouches for the audit trail of a minute ago",
            registry=self.registry,
        )

    def observe(self, event: AuditEvent) -> None:
        name = Event(event.event)
        self.events.labels(name).inc()
        if name in DECISIONS:
            self.decisions.labels(name).inc()
        if name in OUTCOMES:
            self.outcomes.labels(name).inc()
        if name in FAILURES:
            self.failures.labels(name).inc()
        if name is Event.EXPIRED and "lag_seconds" in event.detail:
            self.lag.observe(max(0.0, float(event.detail["lag_seconds"])))

    def render(
        self,
        anchor_source: Callable[[], bool] | None = None,
        stream_source: Callable[[], dict[str, tuple[int, float]]] | None = None,
    ) -> bytes:
        """The registry in Prometheus' text format, with the gauges read now from the anchor and the audit stream
        (when the process has them: the wiring binds them with `functools.partial`)."""
        if anchor_source is not None:
            try:
                self.anchor_up.set(1 if anchor_source() else 0)
            except Exception:  # Vault or the database down: nothing vouches
                self.anchor_up.set(0)
        if stream_source is not None:
            try:
                for sink, (behind, age) in stream_source().items():
                    self.stream_behind.labels(sink).set(behind)
                    self.stream_lag.labels(sink).set(age)
            except Exception:  # the database is down: /metrics still answers, with the last values
                logging.getLogger(__name__).warning("reading the audit stream's lag failed", exc_info=True)
        return generate_latest(self.registry)


class MeteredStore:
    """Wraps the store: every audit event that commits is counted and logged (name and IDs, never details)."""

    def __init__(self, inner: SqlStoreLike, metrics: Metrics):
        self.inner, self.metrics = inner, metrics
        metrics.active.set_function(lambda: inner.count(State.ACTIVE))

    def _seen(self, event: AuditEvent | None) -> None:
        if event is not None:
            self.metrics.observe(event)
            log.info(event.event, extra={"request_id": event.request_id, "actor": event.actor, "scope": event.scope})

    def create(self, request: Request, event: AuditEvent, notices: Sequence[Notice] = ()) -> None:
        self.inner.create(request, event, notices)
        self._seen(event)

    def save(self, request: Request, expected_version: int, event: AuditEvent | None, notices: Sequence[Notice] = ()) -> bool:
        saved = self.inner.save(request, expected_version, event, notices)
        if saved:
            self._seen(event)
        return saved

    def record(self, event: AuditEvent) -> AuditEvent:
        recorded = self.inner.record(event)
        self._seen(recorded)
        return recorded

    # The outbox and reads pass straight through.
    def enqueue(self, notices: Iterable[Notice], at: datetime) -> None:
        self.inner.enqueue(notices, at)

    def claim(self, worker: str, now: datetime, limit: int) -> list[Entry]:
        return self.inner.claim(worker, now, limit)

    def delivered(self, entry_id: int, at: datetime) -> None:
        self.inner.delivered(entry_id, at)

    def renew_claims(self, worker_prefix: str, now: datetime) -> int:
        return self.inner.renew_claims(worker_prefix, now)

    def retry_at(self, entry_id: int, when: datetime) -> None:
        self.inner.retry_at(entry_id, when)

    def failed(self, entry_id: int, at: datetime) -> None:
        self.inner.failed(entry_id, at)

    def settle_credential(self, request_id: str, accessor: str, at: datetime) -> None:
        self.inner.settle_credential(request_id, accessor, at)

    def get(self, request_id: str) -> Request | None:
        return self.inner.get(request_id)

    def find(
        self,
        *,
        states: Collection[State] | None = None,
        requester: str | None = None,
        scopes: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[Request]:
        return self.inner.find(states=states, requester=requester, scopes=scopes, limit=limit)

    def count_requests(self, requester: str, since: datetime) -> int:
        return self.inner.count_requests(requester, since)

    def open_reviews(self) -> list[Request]:
        return self.inner.open_reviews()

    def events(self, query: AuditQuery) -> Iterator[AuditEvent]:
        return self.inner.events(query)

    def event_rows(self, query: AuditQuery) -> Iterator[Sequence[Any]]:
        return self.inner.event_rows(query)

    def csv_lines(self, query: AuditQuery) -> Iterator[tuple[str, int]] | None:
        return self.inner.csv_lines(query)

    def audited_credential(self, request_id: str) -> str | None:
        return self.inner.audited_credential(request_id)

    def chain_head(self) -> tuple[int, str]:
        return self.inner.chain_head()

    def ssh_key(self, user: str) -> str | None:
        return self.inner.ssh_key(user)

    def set_ssh_key(self, user: str, public_key: str, fingerprint: str, at: datetime) -> None:
        self.inner.set_ssh_key(user, public_key, fingerprint, at)

    def csr(self, user: str) -> str | None:
        return self.inner.csr(user)

    def set_csr(self, user: str, csr: str, fingerprint: str, at: datetime) -> None:
        self.inner.set_csr(user, csr, fingerprint, at)

    def healthy(self) -> bool:
        return self.inner.healthy()


class SqlStoreLike(Store, Protocol):
    def count(self, state: State) -> int: ...


class MeteredIssuer:
    """Wraps the credential issuer with latency histograms and failure counts."""

    def __init__(self, inner: CredentialIssuer, metrics: Metrics):
        self.inner, self.metrics = inner, metrics

    def _timed(self, histogram: Histogram, kind: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return call()
        except CredentialError:
            self.metrics.failures.labels(kind).inc()
            raise
        finally:
            histogram.observe(time.perf_counter() - started)

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        return self._timed(self.metrics.issue_seconds, "vault_issue", lambda: self.inner.issue(order, scope))

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        return self._timed(self.metrics.issue_seconds, "vault_issue", lambda: self.inner.extend(handle, order, scope))

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        self._timed(self.metrics.revoke_seconds, "vault_revoke", lambda: self.inner.revoke(handle, request_id, proven))

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        return self.inner.status(handle, request_id)

    def sync(self, catalog: Catalog) -> list[str]:
        return self.inner.sync(catalog)

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        return self.inner.orphans(active)

    def healthy(self) -> bool:
        return self.inner.healthy()

    def wrap_status(self, accessor: str) -> CredentialStatus:
        return self.inner.wrap_status(accessor)

    def revoke_wrap(self, accessor: str) -> None:
        self._timed(self.metrics.revoke_seconds, "vault_revoke", lambda: self.inner.revoke_wrap(accessor))
