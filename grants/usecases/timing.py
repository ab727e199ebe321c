"""Time: what a worker does for a due request it claimed, and ending credentials no grant holds.

The database says what is due and which worker holds it; the timer only wakes the claim loop. Each wake-up re-reads
the request and does the one thing due now, so a late, early or duplicate wake-up is harmless."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from grants import deadlines, outbox
from grants.allowances import extension_room
from grants.catalog import Scope
from grants.credentials import CredentialError, CredentialHandle
from grants.domain import AuditEvent, Request, Review, State
from grants.lifecycle import Event
from grants.usecases import granting
from grants.usecases.deps import Deps

log = logging.getLogger(__name__)


def wake(deps: Deps, request_id: str) -> None:
    """A timer fired: do whatever is due for this request, one step at a time, until nothing is due."""
    for _ in range(10):  # a reminder and an escalation (say) can fall due together after downtime
        if not _wake_once(deps, request_id):
            return


def _wake_once(deps: Deps, request_id: str) -> bool:
    """Handle the one thing due now; True when something was done (and more may be due)."""
    request = deps.requests.get(request_id)
    if request is None:
        return False
    now, scope = deps.clock.now(), deps.catalog.scopes.get(request.scope)
    if request.wake_at is None or now < request.wake_at:
        deps.arm(request)  # woken early (or nothing left): sleep until the real deadline
        return False
    grant = request.grant
    if request.state is State.APPROVED:
        # Approved ahead and its start has come, or interrupted between the decision and Vault (a crash, a hung call).
        issued = granting.issue_approved(deps, request)
        if issued.state is State.APPROVED and issued.version == request.version:
            # Nothing changed: another process released its credential and is recording it (granting.issue). Raised,
            # the claim loop looks again in a few seconds instead of at once.
            raise CredentialError(f"{request.id}'s credential is being issued elsewhere; looking again shortly")
    elif request.state is State.PENDING:
        _wake_pending(deps, request, scope, now)
    elif request.state is State.ACTIVE and grant is not None and now >= grant.expires_at:
        granting.end(deps, request, *granting.overdue_end(deps, request))
    elif request.state is State.ACTIVE and scope is not None and (at := deadlines.warning_at(scope, request)) and now >= at:
        _warn(deps, request, scope)
    elif (review := request.review) and review.state == "open" and review.due_at and now >= review.due_at and scope:
        _remind_review(deps, request, review, scope, now)
    else:
        deps.arm(request)
        return False
    # Each successful commit above re-armed the request for its next deadline; a lost race left it to the winner.
    return True


def _warn(deps: Deps, request: Request, scope: Scope) -> None:
    updated = request.advance(Event.EXPIRY_WARNED, grant=request.with_grant(warned=True))
    notices = [outbox.told(request.id, outbox.News.EXPIRING, can_extend=bool(extension_room(scope, updated)))]
    deps.commit(request, updated, Event.EXPIRY_WARNED, "system", notices=notices, expires_at=str(request.expires_at))


def _remind_review(deps: Deps, request: Request, review: Review, scope: Scope, now: datetime) -> None:
    glass = scope.break_glass
    due = now + (glass.review_within if glass else timedelta(hours=24))
    updated = request.advance(Event.REVIEW_REMINDED, review=Review(review.state, due, review.reviewed_by))
    notices = [outbox.notice(request.id, deps.people.approvers(scope) - {request.requester}, "review")]
    deps.commit(request, updated, Event.REVIEW_REMINDED, "system", notices=notices)


def _wake_pending(deps: Deps, request: Request, scope: Scope | None, now: datetime) -> None:
    if now >= request.pending_until or scope is None:
        updated = request.advance(Event.TIMED_OUT, ended_at=now)
        notices = [outbox.changed(request.id), outbox.told(request.id, Event.TIMED_OUT)]
        if deps.commit(request, updated, Event.TIMED_OUT, "system", notices=notices):
            granting.release_hold(deps, scope, updated)
    elif (at := deadlines.escalation_at(scope, request)) and now >= at:
        updated = request.advance(Event.ESCALATED, approval=request.with_approval(escalated=True))
        escalation = deps.people.members(scope.escalation) - {request.requester}
        notices = [outbox.notice(request.id, escalation, "escalation")]
        deps.commit(request, updated, Event.ESCALATED, "system", notices=notices, to=sorted(escalation))
    elif (at := deadlines.next_reminder(scope, request)) and now >= at:
        sent = request.approval.reminders_sent + 1
        updated = request.advance(Event.REMINDED, approval=request.with_approval(reminders_sent=sent))
        notices = [outbox.notice(request.id, deps.waiting_approvers(scope, updated), "reminder")]
        deps.commit(request, updated, Event.REMINDED, "system", notices=notices, reminder=sent)


def reconcile(deps: Deps) -> dict[str, int]:
    """What no deadline covers: credentials that outlived their grant (what is due is claimed work, see wake)."""
    return {"orphans_ended": end_orphans(deps)}


def end_orphans(deps: Deps) -> int:
    """End credentials that never end by themselves (identity groups) and that no active grant holds."""
    active = deps.requests.find(states=(State.ACTIVE,))
    try:
        orphans = deps.issuer.orphans([r.grant.handle for r in active if r.grant is not None])
    except CredentialError:
        log.exception("could not list credentials without a grant; the next start-up tries again")
        return 0
    ended = 0
    for orphan in orphans:
        handle, request_id = orphan.handle, orphan.request_id
        request = deps.requests.get(request_id)
        if request is not None and request.state in (State.APPROVED, State.ACTIVE):
            # APPROVED: being issued right now (or retried above), its grant is about to hold it. ACTIVE: its row names
            # another credential (rewritten); its own end revokes the one the trail recorded, with its own event.
            continue
        try:
            deps.issuer.revoke(handle, request_id)
        except CredentialError:
            log.exception("could not end a credential without a grant", extra={"credential": str(handle)})
            continue
        log.warning("ended a credential no active grant held", extra={"credential": str(handle)})
        _audit_orphan(deps, handle, request_id, request)
        ended += 1
    return ended


def _audit_orphan(deps: Deps, handle: CredentialHandle, request_id: str, request: Request | None) -> None:
    """A credential ended outside any grant's life is still an access change: the trail must say so (a log is not
    the record). It names the request the credential claims, and that request's state (or that none exists)."""
    detail = {"credential": str(handle), "request_state": request.state.value if request else "none"}
    deps.record_trail(
        AuditEvent(
            event=Event.ORPHAN_ENDED,
            at=deps.clock.now(),
            actor="system",
            request_id=request_id if request else None,
            scope=request.scope if request else None,
            subject=request.requester if request else None,
            detail=detail if request else {**detail, "named_request": request_id},
        )
    )
