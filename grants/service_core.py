"""The service's shared machinery: every write is a CAS with its audit event; issue, end, guard and notify."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from grants import policy
from grants.catalog import Catalog, Scope
from grants.domain import (
    TRANSITIONS,
    AlreadyDecided,
    AuditEvent,
    CredentialError,
    ExtensionOffered,
    InvalidRequest,
    NotAllowed,
    NotFound,
    Request,
    State,
    new_request_id,
)
from grants.durations import format_duration
from grants.people import Directory, People
from grants.ports import Clock, CredentialIssuer, Notifier, Store, Timer

log = logging.getLogger(__name__)

STUCK_APPROVAL_AFTER = timedelta(seconds=15)
REVOKE_BACKOFF_MAX = timedelta(minutes=5)


class ServiceCore:
    """Injected ports and the internals every use case builds on."""

    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        issuer: CredentialIssuer,
        notifier: Notifier,
        timer: Timer,
        clock: Clock,
        directory: Directory | None = None,
    ):
        self.catalog, self.store, self.issuer = catalog, store, issuer
        self.notifier, self.timer, self.clock = notifier, timer, clock
        self.people = People(catalog, directory)

    def _new(self, requester: str, scope_name: str, scope: Scope, duration: timedelta, reason: str) -> Request:
        now = self.clock.now()
        return Request(
            id=new_request_id(), scope=scope_name, requester=requester, duration=duration, reason=reason,
            state=State.PENDING, created_at=now, pending_until=now + self.catalog.settings.pending_timeout_delta,
            approvals_required=scope.approvals_needed,
        )  # fmt: skip

    def _request_detail(self, request: Request, scope: Scope, approvers: frozenset[str]) -> dict[str, Any]:
        return {
            "duration": format_duration(request.duration),
            "duration_seconds": int(request.duration.total_seconds()),
            "reason": request.reason,
            "approvers": sorted(approvers),
            "approvals_required": scope.approvals_needed,
            "steps": [{"name": s.name, "approvals": s.approvals} for s in scope.steps],
        }

    def _refuse_duplicate(self, requester: str, scope_name: str, scope: Scope) -> None:
        for open_request in self.store.find(states=(State.PENDING, State.APPROVED, State.ACTIVE), requester=requester):
            if open_request.scope != scope_name:
                continue
            if open_request.state is State.ACTIVE and policy.extension_room(scope, open_request):
                raise ExtensionOffered(
                    f"You already hold `{scope_name}` ({open_request.id}) until {open_request.expires_at:%Y-%m-%d %H:%M:%S} UTC.",
                    request_id=open_request.id,
                )
            raise InvalidRequest(
                f"You already have {open_request.id} for `{scope_name}` ({open_request.state}). "
                f"Use it, or end it with `revoke {open_request.id}` before asking again.",
                field="scope",
            )

    def _waiting_approvers(self, scope: Scope, request: Request) -> frozenset[str]:
        step = policy.current_step(scope, request)
        if step is None:
            return frozenset()
        return self.people.step_approvers(step, scope, request.escalated) - {request.requester} - set(request.approvals)

    def _require_pending(self, request: Request) -> None:
        # The deadline is checked by the operation itself, not left to a timer that may be late.
        if request.state is State.PENDING and self.clock.now() >= request.pending_until:
            self.wake(request.id)
            raise AlreadyDecided(f"{request.id} was not decided in time and has ended; ask for it again.")
        if request.state is not State.PENDING:
            who = f" by <@{request.decided_by}>" if request.decided_by and request.decided_by != "system" else ""
            raise AlreadyDecided(f"{request.id} was already decided: it is {request.state}{who}.")

    def _issue(self, request: Request) -> Request:
        scope = self.catalog.scopes.get(request.scope)
        now = self.clock.now()
        try:
            if scope is None:
                raise CredentialError(f"scope `{request.scope}` is no longer in the catalog")
            credential = self.issuer.issue(request, scope)
        except CredentialError as exc:
            failed = request.moved(State.FAILED, ended_at=now, review_state=None)
            if self._save(failed, request, "issue_failed", "system", error=str(exc)):
                self._notify(self.notifier.request_changed, failed)
                self._notify(self.notifier.tell_requester, failed, "issue_failed", error=str(exc))
                self._notify(self.notifier.alert, f"Issuing {request.id} ({request.scope}) failed: {exc}")
            return failed
        active = request.moved(State.ACTIVE, issued_at=now, expires_at=now + request.duration, accessor=credential.accessor)
        expires = active.expires_at.isoformat() if active.expires_at else None
        if not self._save(active, request, "issued", "system", accessor=credential.accessor, expires_at=expires):
            # Someone else issued (or ended) this request meanwhile: our token must not survive.
            self._try_revoke(credential.accessor)
            current = self.store.get(request.id)
            return current if current is not None else request
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
        ended = request.moved(to, ended_at=now, decided_by=actor if to is State.REVOKED else request.decided_by)
        detail: dict[str, Any] = {"accessor": request.accessor}
        if to is State.EXPIRED and request.expires_at is not None:
            detail["lag_seconds"] = round((now - request.expires_at).total_seconds(), 3)
        if not self._save(ended, request, TRANSITIONS[(request.state, to)], actor, **detail):
            current = self.store.get(request.id)
            if current is not None and current.state is State.ACTIVE and current.accessor:
                # Lost to a change that kept it active (a warning, an extension): end it as it is now.
                return self._end(current, to, actor)
            return current if current is not None else request  # ended concurrently: one event only, theirs
        self._notify(self.notifier.request_changed, ended)
        self._notify(self.notifier.tell_requester, ended, to.value, actor=actor)
        return ended

    def _revoke_failed(self, request: Request, actor: str, exc: CredentialError) -> Request:
        attempts = request.revoke_attempts + 1
        delay = min(timedelta(seconds=5 * 2 ** (attempts - 1)), REVOKE_BACKOFF_MAX)
        changes: dict[str, Any] = {"revoke_attempts": attempts}
        now = self.clock.now()
        if request.expires_at is not None and now < request.expires_at:
            changes["expires_at"] = now  # an early revoke that failed: the grant ends at the next attempt
        updated = request.changed(**changes)
        # The retry is a wake-up after the backoff: revocation is re-attempted from the database state.
        detail = {"accessor": request.accessor, "attempt": attempts, "error": str(exc), "retry_in": format_duration(delay)}
        if self._save(updated, request, "revoke_failed", actor, wake=delay, **detail):
            self._notify(
                self.notifier.alert,
                f"Revoking {request.id} ({request.scope}) failed (attempt {attempts}): {exc}. "
                f"Retrying in {format_duration(delay)}; Vault's own TTL still ends it.",
            )
        return updated

    def _try_revoke(self, accessor: str) -> None:
        try:
            self.issuer.revoke(accessor)
        except CredentialError:
            log.exception("could not revoke a surplus credential; Vault's TTL will end it")

    def _guard(self, request: Request, actor: str, action: str, check: Callable[[], None]) -> None:
        try:
            check()
        except NotAllowed as refusal:
            self._reject(actor, action, refusal.rule, request)
            raise

    def _reject(self, actor: str, action: str, rule: str, request: Request | None, scope: str | None = None) -> None:
        detail = {"action": action, "rule": rule}
        if request is None:
            self.store.record(
                AuditEvent(event="rejected", at=self.clock.now(), actor=actor, scope=scope, subject=actor, detail=detail)
            )
        else:
            self.store.record(self._event("rejected", request, actor, **detail))

    def _load(self, request_id: str) -> Request:
        request = self.store.get(request_id.strip().upper())
        if request is None:
            raise NotFound(f"There is no request `{request_id}`. `list` shows your requests and their IDs.")
        return request

    def _event(self, name: str, request: Request, actor: str, **detail: Any) -> AuditEvent:
        return AuditEvent(
            event=name, at=self.clock.now(), actor=actor, request_id=request.id, scope=request.scope,
            subject=request.requester, detail=detail,
        )  # fmt: skip

    def _with_wake(self, request: Request, delay: timedelta | None = None) -> Request:
        wake = policy.next_wake(self.catalog.scopes.get(request.scope), request)
        if delay is not None:
            wake = self.clock.now() + delay
        return replace(request, wake_at=wake)

    def _create(self, request: Request, event: str, actor: str, **detail: Any) -> None:
        request = self._with_wake(request)
        self.store.create(request, self._event(event, request, actor, **detail))
        self._arm(request)

    def _save(
        self, updated: Request, current: Request, event: str, actor: str, wake: timedelta | None = None, **detail: Any
    ) -> bool:
        """CAS `current` → `updated` with its audit event; on success the request's timer follows."""
        updated = self._with_wake(updated, wake)
        saved = self.store.save(updated, current.version, self._event(event, updated, actor, **detail))
        if saved:
            self._arm(updated)
        return saved

    def wake(self, request_id: str) -> None:
        """What a timer does for this request: defined by `grants.wakeups.WakeUps`."""
        raise NotImplementedError

    def _arm(self, request: Request) -> None:
        key = f"wake:{request.id}"
        if request.wake_at is None:
            self.timer.cancel(key)
        else:
            self.timer.schedule(key, request.wake_at, lambda: self.wake(request.id))

    def _notify(self, send: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        # The decision is already committed: a Slack failure must never undo or block it.
        try:
            send(*args, **kwargs)
        except Exception:
            log.exception("notification failed", extra={"notification": getattr(send, "__name__", "?")})
