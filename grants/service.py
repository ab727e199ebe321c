"""The elevation use cases: request, decide, issue, end, extend, break glass, review, and the timers' wake-ups."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import IO, Any

from grants import policy, rules
from grants.audit import AuditQuery
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
from grants.exports import export_trail
from grants.people import Directory, People
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
        directory: Directory | None = None,
    ):
        self.catalog, self.store, self.issuer = catalog, store, issuer
        self.notifier, self.timer, self.clock = notifier, timer, clock
        self.people = People(catalog, directory)

    # ---- requests -----------------------------------------------------------------------------

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

    def break_glass(self, requester: str, scope_name: str, duration_text: str | None, reason: str) -> Request:
        """Issue at once for people the catalog allows; approvers are told loudly and must review afterwards."""
        scope = rules.scope_of(self.catalog, scope_name)
        glass = scope.break_glass
        if glass is None or not self.people.in_rule(glass.requesters, requester):
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
                f"without approval. Reason: {reason}. An approver must review it within {glass.review_within}.",
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

    # ---- decisions ----------------------------------------------------------------------------

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

    # ---- time ---------------------------------------------------------------------------------

    def wake(self, request_id: str) -> None:
        """A timer fired: do whatever is due for this request (one step at a time), then sleep again."""
        request = self.store.get(request_id)
        if request is None:
            return
        now, scope = self.clock.now(), self.catalog.scopes.get(request.scope)
        if request.wake_at is None or now < request.wake_at:
            self._arm(request)  # woken early (or nothing left): sleep until the real deadline
            return
        if request.state is State.PENDING:
            self._wake_pending(request, scope, now)
        elif request.state is State.ACTIVE and request.expires_at is not None and now >= request.expires_at:
            self._end(request, State.EXPIRED, "system")
        elif request.state is State.ACTIVE and scope is not None and (at := policy.warning_at(scope, request)) and now >= at:
            updated = request.changed(warned=True)
            if self._save(updated, request, "expiry_warned", "system", expires_at=str(request.expires_at)):
                self._notify(
                    self.notifier.tell_requester, updated, "expiring", can_extend=bool(policy.extension_room(scope, updated))
                )
        elif request.review_state == "open" and request.review_due_at and now >= request.review_due_at and scope is not None:
            glass = scope.break_glass
            updated = request.changed(review_due_at=now + (glass.review_delta if glass else timedelta(hours=24)))
            if self._save(updated, request, "review_reminded", "system"):
                self._notify(
                    self.notifier.approvers_notice, updated, self.people.approvers(scope) - {request.requester}, "review"
                )
        else:
            self._arm(request)
        # Each successful save above re-armed the request for its next deadline; a lost race left it to the winner.

    def _wake_pending(self, request: Request, scope: Scope | None, now: datetime) -> None:
        if now >= request.pending_until or scope is None:
            updated = request.moved(State.TIMED_OUT, ended_at=now)
            if self._save(updated, request, "timed_out", "system"):
                self._notify(self.notifier.request_changed, updated)
                self._notify(self.notifier.tell_requester, updated, "timed_out")
        elif (at := policy.escalation_at(scope, request)) and now >= at:
            updated = request.changed(escalated=True)
            escalation = self.people.members(scope.escalation) - {request.requester}
            if self._save(updated, request, "escalated", "system", to=sorted(escalation)):
                self._notify(self.notifier.approvers_notice, updated, escalation, "escalation")
        elif (at := policy.next_reminder(scope, request)) and now >= at:
            updated = request.changed(reminders_sent=request.reminders_sent + 1)
            if self._save(updated, request, "reminded", "system", reminder=updated.reminders_sent):
                self._notify(self.notifier.approvers_notice, updated, self._waiting_approvers(scope, updated), "reminder")

    def reconcile(self) -> dict[str, int]:
        """Bring the world in line with the database: the bot may have been down for a while."""
        now = self.clock.now()
        counts = {"woken": 0, "retried": 0}
        for request in self.store.due(now):
            self._arm(request)  # due now: the timer runs it at once, on the timer's workers, never twice
            counts["woken"] += 1
        for request in self.store.find(states=(State.APPROVED,)):
            # An approval older than this was interrupted between the decision and Vault.
            if request.decided_at is not None and now - request.decided_at >= STUCK_APPROVAL_AFTER:
                self._issue(request)
                counts["retried"] += 1
        return counts

    def arm_due(self, horizon: datetime) -> int:
        """Arm exact timers for whatever falls due before `horizon`, whichever replica wrote it."""
        due = self.store.due(horizon)
        for request in due:
            self._arm(request)
        return len(due)

    # ---- queries and other audited actions ---------------------------------------------------

    def get(self, request_id: str) -> Request:
        return self._load(request_id)

    def mine(self, user: str) -> list[Request]:
        """The user's open requests and grants, then their most recent others (20 at most)."""
        open_ = self.store.find(requester=user, states=(State.PENDING, State.APPROVED, State.ACTIVE))
        seen = {r.id for r in open_}
        recent = [r for r in self.store.find(requester=user, limit=20) if r.id not in seen]
        return (open_ + recent)[:20] if len(open_) < 20 else open_

    def waiting_on(self, user: str) -> list[Request]:
        scopes = [name for name, scope in self.catalog.scopes.items() if user in self.people.approvers(scope)]
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

    # ---- internals ----------------------------------------------------------------------------

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
            current = self.store.get(request.id)  # ended concurrently: one event only, theirs
            return current if current is not None else request
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
