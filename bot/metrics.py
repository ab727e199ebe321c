"""Prometheus metrics, from the audit events the store commits (its on_committed hook) and the credential calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from grants.catalog import Catalog, Scope
from grants.credentials import CredentialError, CredentialHandle, CredentialStatus, IssuedCredential, IssueOrder, Orphan
from grants.domain import AuditEvent
from grants.lifecycle import Event
from grants.ports import CredentialIssuer

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

    def on_committed(self, event: AuditEvent) -> None:
        """The store's hook after each commit that wrote an audit event: counted, and logged (name and IDs, never details)."""
        self.observe(event)
        log.info(event.event, extra={"request_id": event.request_id, "actor": event.actor, "scope": event.scope})

    def render(
        self,
        active_source: Callable[[], int] | None = None,
        anchor_source: Callable[[], bool] | None = None,
        stream_source: Callable[[], dict[str, tuple[int, float]]] | None = None,
    ) -> bytes:
        """The registry in Prometheus' text format, with the gauges read now: active grants, the anchor, the audit stream
        (when the process has them: the wiring binds them with `functools.partial`)."""
        if active_source is not None:
            self.active.set(active_source())  # as a gauge's `set_function` would: a database down fails the scrape
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
