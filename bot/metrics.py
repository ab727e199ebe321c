"""Prometheus metrics, derived from the audit events and the credential calls; served at GET /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from grants.catalog import Scope
from grants.domain import AuditEvent, CredentialError, IssuedCredential, Request, State
from grants.ports import CredentialIssuer

log = logging.getLogger("jitbot.audit")
T = TypeVar("T")


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
            "jitbot_revocation_lag_seconds", "Actual revocation time minus expiry", registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300),
        )  # fmt: skip

    def observe(self, event: AuditEvent) -> None:
        self.events.labels(event.event).inc()
        if event.event in ("approved", "denied"):
            self.decisions.labels(event.event).inc()
        if event.event in ("expired", "revoked", "denied", "cancelled", "timed_out", "issue_failed"):
            self.outcomes.labels(event.event).inc()
        if event.event in ("issue_failed", "revoke_failed", "rejected"):
            self.failures.labels(event.event).inc()
        if event.event == "expired" and "lag_seconds" in event.detail:
            self.lag.observe(max(0.0, float(event.detail["lag_seconds"])))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MeteredStore:
    """Wraps the store: every audit event that commits is counted and logged (name and IDs, never details)."""

    def __init__(self, inner: Any, metrics: Metrics):
        self.inner, self.metrics = inner, metrics
        metrics.active.set_function(lambda: inner.count(State.ACTIVE))

    def _seen(self, event: AuditEvent | None) -> None:
        if event is not None:
            self.metrics.observe(event)
            log.info(event.event, extra={"request_id": event.request_id, "actor": event.actor, "scope": event.scope})

    def create(self, request: Request, event: AuditEvent) -> None:
        self.inner.create(request, event)
        self._seen(event)

    def save(self, request: Request, expected_version: int, event: AuditEvent | None) -> bool:
        saved: bool = self.inner.save(request, expected_version, event)
        if saved:
            self._seen(event)
        return saved

    def record(self, event: AuditEvent) -> AuditEvent:
        recorded: AuditEvent = self.inner.record(event)
        self._seen(recorded)
        return recorded

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # reads pass straight through


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

    def issue(self, request: Request, scope: Scope) -> IssuedCredential:
        return self._timed(self.metrics.issue_seconds, "vault_issue", lambda: self.inner.issue(request, scope))

    def revoke(self, accessor: str) -> None:
        self._timed(self.metrics.revoke_seconds, "vault_revoke", lambda: self.inner.revoke(accessor))

    def healthy(self) -> bool:
        return self.inner.healthy()

    def keep_alive(self) -> None:
        keep_alive = getattr(self.inner, "keep_alive", None)
        if keep_alive is not None:
            keep_alive()
