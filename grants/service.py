"""The elevation use cases: request, approve, deny, cancel, revoke, expire, time out and reconcile."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import IO, Any

from grants import rules
from grants.audit import AuditQuery
from grants.catalog import Catalog
from grants.domain import (
    TRANSITIONS,
    AlreadyDecided,
    AuditEvent,
    CredentialError,
    InvalidRequest,
    NotAllowed,
    NotFound,
    Request,
    State,
    new_request_id,
)
from grants.durations import format_duration
from grants.exports import export_trail
from grants.ports import Clock, CredentialIssuer, Notifier, Store, Timer

log = logging.getLogger(__name__)

STUCK_APPROVAL_AFTER = timedelta(seconds=15)
REVOKE_BACKOFF_MAX = timedelta(minutes=5)


class ElevationService:
    """One object with injected ports; every state change is a CAS that writes its audit event."""

    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        issuer: CredentialIssuer,
        notifier: Notifier,
        timer: Timer,
        clock: Clock,
    ):
        self.catalog, self.store, self.issuer = catalog, store, issuer
        self.notifier, self.timer, self.clock = notifier, timer, clock

    # ---- requests and decisions -------------------------------------------------------------

    def request(self, requester: str, scope_name: str, duration_text: str | None, reason: str) -> Request:
        scope = rules.scope_of(self.catalog, scope_name)
        rules.require_requester(self.catalog, scope_name, scope, requester)
        duration = rules.checked_duration(scope_name, scope, duration_text)
        reason = rules.checked_reason(scope_name, scope, reason)
        for open_request in self.store.find(states=(State.PENDING, State.APPROVED, State.ACTIVE), requester=requester):
            if open_request.scope == scope_name:
                raise InvalidRequest(
                    f"You already have {open_request.id} for `{scope_name}` ({open_request.state}). "
                    f"Use it, or end it with `revoke {open_request.id}` before asking again.",
                    field="scope",
                )
        now = self.clock.now()
        request = Request(
            id=new_request_id(),
            scope=scope_name,
            requester=requester,
            duration=duration,
            reason=reason,
            state=State.PENDING,
            created_at=now,
            pending_until=now + self.catalog.settings.pending_timeout_delta,
            approvals_required=scope.approvals_required,
        )
        approvers = self.catalog.approvers(scope) - {requester}
        self.store.create(
            request,
            self._event(
                "requested",
                request,
                requester,
                duration=format_duration(duration),
                duration_seconds=int(duration.total_seconds()),
                reason=reason,
                approvers=sorted(approvers),
                approvals_required=scope.approvals_required,
            ),
        )
        self._schedule_timeout(request)
        self._notify(self.notifier.request_opened, request, frozenset(approvers))
        return request

    def approve(self, request_id: str, actor: str) -> Request:
        while True:
            request = self._decidable(request_id, actor, "approve")
            if actor in request.approvals:
                raise AlreadyDecided(f"You already approved {request.id}; it waits for another approver.")
            approvals = (*request.approvals, actor)
            now = self.clock.now()
            if len(approvals) >= request.approvals_required:
                updated = request.moved(State.APPROVED, approvals=approvals, decided_by=actor, decided_at=now)
                event = self._event("approved", updated, actor, approvers=list(approvals))
            else:
                updated = request.changed(approvals=approvals)
                event = self._event(
                    "approval_added", updated, actor, approvers=list(approvals), approvals_required=request.approvals_required
                )
            if self.store.save(updated, request.version, event):
                break  # lost a race: reload and decide again on the current state
        self._notify(self.notifier.request_changed, updated)
        if updated.state is State.APPROVED:
            self._notify(self.notifier.tell_requester, updated, "approved")
            return self._issue(updated)
        return updated

    def deny(self, request_id: str, actor: str, reason: str = "") -> Request:
        while True:
            request = self._decidable(request_id, actor, "deny")
            now = self.clock.now()
            updated = request.moved(State.DENIED, decided_by=actor, decided_at=now, ended_at=now)
            if self.store.save(updated, request.version, self._event("denied", updated, actor, reason=reason)):
                break
        self.timer.cancel(f"timeout:{request_id}")
        self._notify(self.notifier.request_changed, updated)
        self._notify(self.notifier.tell_requester, updated, "denied", reason=reason)
        return updated

    def cancel(self, request_id: str, actor: str) -> Request:
        while True:
            request = self._load(request_id)
            self._guard(request, actor, "cancel", partial(rules.require_requester_of, request, actor, "cancel"))
            if request.state is not State.PENDING:
                raise AlreadyDecided(f"{request.id} is already {request.state}; only pending requests can be cancelled.")
            now = self.clock.now()
            updated = request.moved(State.CANCELLED, decided_by=actor, decided_at=now, ended_at=now)
            if self.store.save(updated, request.version, self._event("cancelled", updated, actor)):
                break
        self.timer.cancel(f"timeout:{request_id}")
        self._notify(self.notifier.request_changed, updated)
        return updated

    def revoke(self, request_id: str, actor: str) -> Request:
        """End a grant now; a pending request of one's own is cancelled instead."""
        request = self._load(request_id)
        scope = rules.scope_of(self.catalog, request.scope)
        self._guard(request, actor, "revoke", lambda: rules.require_can_revoke(self.catalog, scope, request, actor))
        if request.state is State.PENDING and actor == request.requester:
            return self.cancel(request_id, actor)
        if request.state is not State.ACTIVE:
            raise AlreadyDecided(f"{request.id} is {request.state}, not an active grant; there is nothing to revoke.")
        return self._end(request, State.REVOKED, actor)

    # ---- time ---------------------------------------------------------------------------------

    def expire(self, request_id: str) -> None:
        request = self.store.get(request_id)
        if request is None or request.state is not State.ACTIVE or request.expires_at is None:
            return
        if self.clock.now() < request.expires_at:
            self._schedule_expiry(request)  # woken early: sleep again until the real deadline
            return
        self._end(request, State.EXPIRED, "system")

    def time_out(self, request_id: str) -> None:
        request = self.store.get(request_id)
        if request is None or request.state is not State.PENDING:
            return
        now = self.clock.now()
        if now < request.pending_until:
            self._schedule_timeout(request)
            return
        updated = request.moved(State.TIMED_OUT, ended_at=now)
        if self.store.save(updated, request.version, self._event("timed_out", updated, "system")):
            self._notify(self.notifier.request_changed, updated)
            self._notify(self.notifier.tell_requester, updated, "timed_out")

    def reconcile(self) -> dict[str, int]:
        """Bring the world in line with the database: the bot may have been down for a while."""
        now = self.clock.now()
        counts = {"expired": 0, "timed_out": 0, "retried": 0}
        for request in self.store.due(now):
            if request.state is State.ACTIVE:
                self.expire(request.id)
                counts["expired"] += 1
            else:
                self.time_out(request.id)
                counts["timed_out"] += 1
        for request in self.store.find(states=(State.APPROVED,)):
            # An approval older than this was interrupted between the decision and Vault.
            if request.decided_at is not None and now - request.decided_at >= STUCK_APPROVAL_AFTER:
                self._issue(request)
                counts["retried"] += 1
        return counts

    def arm_due(self, horizon: datetime) -> int:
        """Arm exact timers for whatever falls due before `horizon`, whichever replica created it."""
        due = self.store.due(horizon)
        for request in due:
            if request.state is State.ACTIVE:
                self._schedule_expiry(request)
            else:
                self._schedule_timeout(request)
        return len(due)

    # ---- queries and other audited actions ---------------------------------------------------

    def get(self, request_id: str) -> Request:
        return self._load(request_id)

    def mine(self, user: str) -> list[Request]:
        return self.store.find(requester=user, limit=20)

    def waiting_on(self, user: str) -> list[Request]:
        return [
            r
            for r in self.store.find(states=(State.PENDING,))
            if r.requester != user and user not in r.approvals and user in self.catalog.approvers(self.catalog.scopes[r.scope])
        ]

    def require_auditor(self, user: str, action: str) -> None:
        if not rules.is_auditor(self.catalog, user):
            self._reject(user, action, "not_an_auditor", None)
            raise NotAllowed("Only auditors named in the catalog can export the audit trail.", rule="not_an_auditor")

    def export(self, actor: str, query: AuditQuery, out: IO[str], fmt: str, **context: Any) -> int:
        """Stream the audit trail to `out`; the export is itself an audited event."""
        return export_trail(self.store, self.clock, actor, query, out, fmt, **context)

    # ---- internals ----------------------------------------------------------------------------

    def _issue(self, request: Request) -> Request:
        scope = self.catalog.scopes.get(request.scope)
        now = self.clock.now()
        try:
            if scope is None:
                raise CredentialError(f"scope `{request.scope}` is no longer in the catalog")
            credential = self.issuer.issue(request, scope)
        except CredentialError as exc:
            failed = request.moved(State.FAILED, ended_at=now)
            if self.store.save(failed, request.version, self._event("issue_failed", failed, "system", error=str(exc))):
                self._notify(self.notifier.request_changed, failed)
                self._notify(self.notifier.tell_requester, failed, "issue_failed", error=str(exc))
                self._notify(self.notifier.alert, f"Issuing {request.id} ({request.scope}) failed: {exc}")
            return failed
        active = request.moved(State.ACTIVE, issued_at=now, expires_at=now + request.duration, accessor=credential.accessor)
        event = self._event(
            "issued",
            active,
            "system",
            accessor=credential.accessor,
            expires_at=active.expires_at.isoformat() if active.expires_at else None,
        )
        if not self.store.save(active, request.version, event):
            # Someone else issued (or ended) this request meanwhile: our token must not survive.
            self._try_revoke(credential.accessor)
            current = self.store.get(request.id)
            return current if current is not None else request
        self._schedule_expiry(active)
        self._notify(self.notifier.deliver_credential, active, credential)
        self._notify(self.notifier.request_changed, active)
        return active

    def _end(self, request: Request, to: State, actor: str) -> Request:
        assert request.accessor is not None
        now = self.clock.now()
        try:
            self.issuer.revoke(request.accessor)
        except CredentialError as exc:
            return self._revoke_failed(request, actor, exc)
        lag = (now - request.expires_at).total_seconds() if request.expires_at else 0.0
        ended = request.moved(to, ended_at=now, decided_by=actor if to is State.REVOKED else request.decided_by)
        detail: dict[str, Any] = {"accessor": request.accessor}
        if to is State.EXPIRED:
            detail["lag_seconds"] = round(lag, 3)
        if not self.store.save(ended, request.version, self._event(TRANSITIONS[(request.state, to)], ended, actor, **detail)):
            current = self.store.get(request.id)  # ended concurrently: one event only, theirs
            return current if current is not None else request
        self.timer.cancel(f"expire:{request.id}")
        self._notify(self.notifier.request_changed, ended)
        self._notify(self.notifier.tell_requester, ended, to.value, actor=actor)
        return ended

    def _revoke_failed(self, request: Request, actor: str, exc: CredentialError) -> Request:
        attempts = request.revoke_attempts + 1
        delay = min(timedelta(seconds=5 * 2 ** (attempts - 1)), REVOKE_BACKOFF_MAX)
        updated = request.changed(revoke_attempts=attempts)
        event = self._event("revoke_failed", updated, actor, accessor=request.accessor, attempt=attempts, error=str(exc))
        if self.store.save(updated, request.version, event):
            self.timer.schedule(f"expire:{request.id}", self.clock.now() + delay, lambda: self._retry_revoke(request.id, actor))
            self._notify(
                self.notifier.alert,
                f"Revoking {request.id} ({request.scope}) failed (attempt {attempts}): {exc}. "
                f"Retrying in {format_duration(delay)}; Vault's own TTL still ends it.",
            )
        return updated

    def _retry_revoke(self, request_id: str, actor: str) -> None:
        request = self.store.get(request_id)
        if request is None or request.state is not State.ACTIVE or request.expires_at is None:
            return
        expired = self.clock.now() >= request.expires_at
        self._end(request, State.EXPIRED if expired else State.REVOKED, "system" if expired else actor)

    def _try_revoke(self, accessor: str) -> None:
        try:
            self.issuer.revoke(accessor)
        except CredentialError:
            log.exception("could not revoke a surplus credential; Vault's TTL will end it")

    def _decidable(self, request_id: str, actor: str, action: str) -> Request:
        request = self._load(request_id)
        scope = rules.scope_of(self.catalog, request.scope)
        self._guard(request, actor, action, lambda: rules.require_can_decide(self.catalog, scope, request, actor))
        if request.state is not State.PENDING:
            who = f" by <@{request.decided_by}>" if request.decided_by and request.decided_by != "system" else ""
            raise AlreadyDecided(f"{request.id} was already decided: it is {request.state}{who}.")
        return request

    def _guard(self, request: Request, actor: str, action: str, check: Callable[[], None]) -> None:
        try:
            check()
        except NotAllowed as refusal:
            self._reject(actor, action, refusal.rule, request)
            raise

    def _reject(self, actor: str, action: str, rule: str, request: Request | None) -> None:
        detail = {"action": action, "rule": rule}
        if request is None:
            self.store.record(AuditEvent(event="rejected", at=self.clock.now(), actor=actor, detail=detail))
        else:
            self.store.record(self._event("rejected", request, actor, **detail))

    def _load(self, request_id: str) -> Request:
        request = self.store.get(request_id.strip().upper())
        if request is None:
            raise NotFound(f"There is no request `{request_id}`. `list` shows your requests and their IDs.")
        return request

    def _event(self, name: str, request: Request, actor: str, **detail: Any) -> AuditEvent:
        return AuditEvent(
            event=name,
            at=self.clock.now(),
            actor=actor,
            request_id=request.id,
            scope=request.scope,
            subject=request.requester,
            detail=detail,
        )

    def _schedule_expiry(self, request: Request) -> None:
        if request.expires_at is not None:
            self.timer.schedule(f"expire:{request.id}", request.expires_at, lambda: self.expire(request.id))

    def _schedule_timeout(self, request: Request) -> None:
        self.timer.schedule(f"timeout:{request.id}", request.pending_until, lambda: self.time_out(request.id))

    def _notify(self, send: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        # The decision is already committed: a Slack failure must never undo or block it.
        try:
            send(*args, **kwargs)
        except Exception:
            log.exception("notification failed", extra={"notification": getattr(send, "__name__", "?")})
