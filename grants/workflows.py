"""Workflows beyond request-and-approve: break-glass and its review, extensions, nudges."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

from grants import policy, rules
from grants.catalog import Scope
from grants.domain import (
    AlreadyDecided,
    CredentialError,
    InvalidRequest,
    Request,
    State,
)
from grants.durations import format_duration
from grants.wakeups import WakeUps


class Workflows(WakeUps):
    """Break-glass, review, extension and nudge use cases."""

    def break_glass(self, requester: str, scope_name: str, duration_text: str | None, reason: str) -> Request:
        """Issue at once for people the catalog allows; approvers are told loudly and must review afterwards."""
        scope = rules.scope_of(self.catalog, scope_name)
        glass = scope.break_glass
        if glass is None or not self.people.in_rule(glass.requesters, requester):
            # Trying to bypass approval without the right to is a security refusal: audited.
            self._reject(requester, "break_glass", "not_break_glass_eligible", None, scope=scope_name)
            raise InvalidRequest(
                f"Break-glass is not available to you for `{scope_name}`. Use a normal request: "
                f"`{scope_name} <duration> <reason…>`.",
                field="scope",
            )
        duration = rules.checked_duration(scope_name, scope, duration_text or glass.max_duration)
        if duration > glass.max:
            raise InvalidRequest(f"Break-glass on `{scope_name}` is capped at {glass.max_duration}.", field="duration")
        if not reason.strip():
            raise InvalidRequest("Break-glass always needs a reason: say what is on fire.", field="reason")
        reason = rules.checked_reason(scope_name, scope, reason)
        self._refuse_duplicate(requester, scope_name, scope)
        now = self.clock.now()
        request = replace(
            self._new(requester, scope_name, scope, duration, reason),
            break_glass=True,
            review_state="open",
            review_due_at=now + glass.review_delta,
        )
        approvers = self.people.approvers(scope) - {requester}
        self._create(request, "requested", requester, break_glass=True, **self._request_detail(request, scope, approvers))
        approved = request.moved(State.APPROVED, decided_by="system", decided_at=now)
        self._save(approved, request, "approved", "system", break_glass=True, review_within=glass.review_within)
        active = self._issue(approved)
        if active.state is State.ACTIVE:
            self._notify(self.notifier.approvers_notice, active, approvers, "break_glass")
            self._notify(
                self.notifier.alert,
                f"BREAK-GLASS {active.id}: <@{requester}> took `{scope_name}` for {format_duration(duration)} "
                f"without approval. An approver must review it within {glass.review_within}.",
            )
        return active

    def extend(self, request_id: str, actor: str, duration_text: str | None = None) -> Request:
        """Ask for more time on an active grant: at once, or after one approver agrees, per the catalog."""
        request = self._load(request_id)
        self._guard(request, actor, "extend", partial(rules.require_requester_of, request, actor, "extend"))
        scope = rules.scope_of(self.catalog, request.scope)
        if request.state is not State.ACTIVE:
            raise AlreadyDecided(f"{request.id} is {request.state}; only an active grant can be extended.")
        if request.extension_pending is not None:
            raise AlreadyDecided(f"An extension of {request.id} already waits for an approver.")
        added = rules.checked_extension(scope, request, duration_text)
        if scope.extension_requires_approval:
            updated = request.changed(extension_pending=added)
            self._save(updated, request, "extension_requested", actor, added=format_duration(added))
            approvers = self.people.approvers(scope) - {request.requester}
            self._notify(self.notifier.approvers_notice, updated, approvers, "extension")
            return updated
        return self._apply_extension(request, added, actor)  # no approval needed: the requester is the actor

    def nudge(self, request_id: str, actor: str) -> Request:
        request = self._load(request_id)
        self._guard(request, actor, "nudge", partial(rules.require_requester_of, request, actor, "nudge"))
        scope = rules.scope_of(self.catalog, request.scope)
        if request.state is not State.PENDING:
            raise AlreadyDecided(f"{request.id} is {request.state}; only a pending request can be nudged.")
        now, interval = self.clock.now(), policy.nudge_interval(scope)
        if request.nudged_at is not None and now - request.nudged_at < interval:
            again = request.nudged_at + interval
            raise InvalidRequest(f"You nudged {request.id} already; you can nudge again after {again:%H:%M} UTC.", field="nudge")
        updated = request.changed(nudged_at=now)
        self._save(updated, request, "nudged", actor)
        self._notify(self.notifier.approvers_notice, updated, self._waiting_approvers(scope, updated), "nudge")
        return updated

    def review(self, request_id: str, actor: str, outcome: str, note: str = "") -> Request:
        """Close a break-glass review as acknowledged or flagged."""
        if outcome not in ("acknowledged", "flagged"):
            raise InvalidRequest("A review ends as `acknowledged` or `flagged`.", field="outcome")
        request = self._load(request_id)
        scope = rules.scope_of(self.catalog, request.scope)
        self._guard(request, actor, "review", partial(rules.require_can_decide, self.people, scope, request, actor))
        if request.review_state != "open":
            raise AlreadyDecided(f"{request.id} has no open review (it is {request.review_state or 'not break-glass'}).")
        updated = request.changed(review_state=outcome, reviewed_by=actor)
        if not self._save(updated, request, f"review_{outcome}", actor, note=note):
            raise AlreadyDecided(f"The review of {request.id} was closed a moment ago.")
        self._notify(self.notifier.request_changed, updated)
        self._notify(self.notifier.tell_requester, updated, f"review_{outcome}", actor=actor, note=note)
        if outcome == "flagged":
            self._notify(
                self.notifier.alert, f"Break-glass {request.id} was FLAGGED by <@{actor}> on review: {note or 'no note'}"
            )
        return updated

    def _approve_extension(self, request: Request, scope: Scope, actor: str) -> Request:
        self._guard(request, actor, "approve_extension", partial(rules.require_can_decide, self.people, scope, request, actor))
        assert request.extension_pending is not None
        return self._apply_extension(request, request.extension_pending, actor)

    def _apply_extension(self, request: Request, added: timedelta, actor: str) -> Request:
        """A token's explicit max TTL cannot grow, so an extension is a new token for the rest of the time;
        the old one is revoked once the new one is recorded."""
        scope = rules.scope_of(self.catalog, request.scope)
        now = self.clock.now()
        assert request.expires_at is not None and request.accessor is not None
        new_expiry = request.expires_at + added
        try:
            credential = self.issuer.issue(replace(request, duration=new_expiry - now), scope)
        except CredentialError as exc:
            updated = request.changed(extension_pending=None)
            self._save(updated, request, "extension_failed", "system", error=str(exc))
            self._notify(self.notifier.tell_requester, updated, "extension_failed", error=str(exc))
            return updated
        extended = request.changed(
            expires_at=new_expiry, accessor=credential.accessor, duration=request.duration + added,
            extensions=request.extensions + 1, extension_pending=None, warned=False,
        )  # fmt: skip
        detail: dict[str, Any] = {
            "added": format_duration(added),
            "old_accessor": request.accessor,
            "accessor": credential.accessor,
        }
        if not self._save(extended, request, "extended", actor, expires_at=new_expiry.isoformat(), **detail):
            self._try_revoke(credential.accessor)
            raise AlreadyDecided(f"{request.id} changed while extending it; look at it again.")
        self._revoke_replaced(extended, request.accessor)
        self._notify(self.notifier.deliver_credential, extended, credential)
        self._notify(self.notifier.request_changed, extended)
        return extended

    def _revoke_replaced(self, request: Request, accessor: str) -> None:
        """The token an extension replaced must end now; if Vault refuses, audit and alert (its TTL still ends it)."""
        try:
            self.issuer.revoke(accessor)
        except CredentialError as exc:
            self.store.record(self._event("revoke_failed", request, "system", accessor=accessor, replaced=True, error=str(exc)))
            self._notify(
                self.notifier.alert,
                f"Revoking the token that {request.id}'s extension replaced failed: {exc}. Its own TTL ends it at the old expiry.",
            )
