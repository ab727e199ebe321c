"""The elevation use cases: request, decide, cancel, revoke, and what people may see."""

from __future__ import annotations

from functools import partial
from typing import IO, Any

from grants import policy, rules
from grants.audit import AuditQuery
from grants.domain import (
    AlreadyDecided,
    NotAllowed,
    Request,
    State,
)
from grants.exports import export_trail
from grants.workflows import Workflows


class ElevationService(Workflows):
    """One object with injected ports; every state change is a CAS that writes its audit event."""

    def request(self, requester: str, scope_name: str, duration_text: str | None, reason: str) -> Request:
        scope = rules.scope_of(self.catalog, scope_name)
        rules.require_requester(self.people, scope_name, scope, requester)
        duration = rules.checked_duration(scope_name, scope, duration_text)
        reason = rules.checked_reason(scope_name, scope, reason)
        self._refuse_duplicate(requester, scope_name, scope)
        request = self._new(requester, scope_name, scope, duration, reason)
        rule = policy.auto_rule(self.people, scope, requester, duration)
        approvers = self.people.approvers(scope) - {requester}
        self._create(request, "requested", requester, **self._request_detail(request, scope, approvers))
        if rule is not None:
            # Policy as data: the rule that fired is recorded, and `system` is the approver of record.
            approved = request.moved(State.APPROVED, decided_by="system", decided_at=self.clock.now())
            self._save(approved, request, "approved", "system", auto_approve=rule.name or "auto_approve", approvers=[])
            self._notify(self.notifier.tell_requester, approved, "auto_approved", rule=rule.name)
            return self._issue(approved)
        first_step = scope.steps[0]
        self._notify(self.notifier.request_opened, request, self.people.step_approvers(first_step, scope, False) - {requester})
        return request

    def approve(self, request_id: str, actor: str) -> Request:
        while True:
            request = self._load(request_id)
            scope = rules.scope_of(self.catalog, request.scope)
            if request.state is State.ACTIVE and request.extension_pending is not None:
                return self._approve_extension(request, scope, actor)
            self._guard(request, actor, "approve", partial(rules.require_can_approve_step, self.people, scope, request, actor))
            self._require_pending(request)
            approvals = (*request.approvals, actor)
            now = self.clock.now()
            step_index, _ = policy.step_progress(scope, request.approvals)  # the step this approval counts for
            if len(approvals) >= request.approvals_required:
                updated = request.moved(State.APPROVED, approvals=approvals, decided_by=actor, decided_at=now)
                saved = self._save(updated, request, "approved", actor, approvers=list(approvals))
            else:
                updated = request.changed(approvals=approvals)
                saved = self._save(
                    updated, request, "approval_added", actor, approvers=list(approvals), step=step_index + 1,
                    step_name=scope.steps[step_index].name, approvals_required=request.approvals_required,
                )  # fmt: skip
            if saved:
                break  # lost a race otherwise: reload and decide again on the current state
        if updated.state is State.APPROVED:
            # Straight to Vault: the credential DM (which names the approvers) is the first thing
            # queued, and the approvers' message is re-rendered right after it.
            return self._issue(updated)
        self._notify(self.notifier.request_changed, updated)
        if policy.step_progress(scope, updated.approvals)[0] > step_index:  # a step completed: tell the next one
            self._notify(self.notifier.request_opened, updated, self._waiting_approvers(scope, updated))
        return updated

    def deny(self, request_id: str, actor: str, reason: str = "") -> Request:
        while True:
            request = self._load(request_id)
            scope = rules.scope_of(self.catalog, request.scope)
            self._guard(request, actor, "deny", partial(rules.require_can_decide, self.people, scope, request, actor))
            if request.state is State.ACTIVE and request.extension_pending is not None:
                updated = request.changed(extension_pending=None)
                if self._save(updated, request, "extension_denied", actor, reason=reason):
                    self._notify(self.notifier.tell_requester, updated, "extension_denied", reason=reason, actor=actor)
                    return updated
                continue
            self._require_pending(request)
            now = self.clock.now()
            updated = request.moved(State.DENIED, decided_by=actor, decided_at=now, ended_at=now)
            if self._save(updated, request, "denied", actor, reason=reason):
                break
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
            if self._save(updated, request, "cancelled", actor):
                break
        self._notify(self.notifier.request_changed, updated)
        return updated

    def revoke(self, request_id: str, actor: str) -> Request:
        """End a grant now ("I'm done" when it is the requester); a pending request of one's own is cancelled."""
        request = self._load(request_id)
        scope = rules.scope_of(self.catalog, request.scope)
        self._guard(request, actor, "revoke", partial(rules.require_can_revoke, self.people, scope, request, actor))
        if request.state is State.PENDING and actor == request.requester:
            return self.cancel(request_id, actor)
        if request.state is not State.ACTIVE:
            raise AlreadyDecided(f"{request.id} is {request.state}, not an active grant; there is nothing to revoke.")
        return self._end(request, State.REVOKED, actor)

    def get(self, request_id: str) -> Request:
        return self._load(request_id)

    def mine(self, user: str) -> list[Request]:
        """The user's open requests and grants, then their most recent others (20 at most)."""
        open_ = self.store.find(requester=user, states=(State.PENDING, State.APPROVED, State.ACTIVE))
        seen = {r.id for r in open_}
        recent = [r for r in self.store.find(requester=user, limit=20) if r.id not in seen]
        return (open_ + recent)[:20] if len(open_) < 20 else open_

    def waiting_on(self, user: str) -> list[Request]:
        scopes = [name for name, scope in self.catalog.scopes.items() if user in self.people.approvers(scope, escalated=True)]
        if not scopes:
            return []  # most people approve nothing: no query at all
        waiting = []
        for request in self.store.find(states=(State.PENDING, State.ACTIVE), scopes=scopes):
            scope = self.catalog.scopes.get(request.scope)
            if scope is None or request.requester == user or user in request.approvals:
                continue
            if request.state is State.PENDING and user in self._waiting_approvers(scope, request):
                waiting.append(request)
            elif request.extension_pending is not None and user in self.people.approvers(scope):
                waiting.append(request)
        return waiting

    def open_reviews(self, user: str | None = None) -> list[Request]:
        """Open break-glass reviews; for a user, those they may close (auditors see all)."""
        reviews = self.store.open_reviews()
        if user is None or user in self.people.auditors():
            return reviews
        return [
            r for r in reviews if r.scope in self.catalog.scopes and user in self.people.approvers(self.catalog.scopes[r.scope])
        ]

    def require_auditor(self, user: str, action: str) -> None:
        if user not in self.people.auditors():
            self._reject(user, action, "not_an_auditor", None)
            raise NotAllowed("Only auditors named in the catalog can export the audit trail.", rule="not_an_auditor")

    def export(self, actor: str, query: AuditQuery, out: IO[str], fmt: str, **context: Any) -> int:
        """Stream the audit trail to `out`; the export is itself an audited event."""
        return export_trail(self.store, self.clock, actor, query, out, fmt, **context)
