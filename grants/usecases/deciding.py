"""Deciding a pending request: approve (step by step), deny, cancel; and ending a grant early (revoke)."""

from __future__ import annotations

from functools import partial

from grants import guards, outbox
from grants.domain import AlreadyDecided, Request, State
from grants.lifecycle import Event
from grants.steps import step_progress
from grants.usecases import granting, timing
from grants.usecases.deps import Deps


def require_pending(deps: Deps, request: Request) -> None:
    # The deadline is checked by the operation itself, not left to a timer that may be late.
    if request.state is State.PENDING and deps.clock.now() >= request.pending_until:
        timing.wake(deps, request.id)
        raise AlreadyDecided(f"{request.id} was not decided in time and has ended; ask for it again.")
    if request.state is not State.PENDING:
        raise AlreadyDecided(
            f"{request.id} was already decided: it is {request.state}.",
            request_id=request.id,
            state=request.state,
            decided_by=request.decided_by,
        )


def approve(deps: Deps, request_id: str, actor: str, shown_for: str = "r") -> Request:
    while True:
        request = deps.load(request_id)
        scope = deps.scope(request.scope)
        deps.guard(request, actor, "approve", partial(guards.require_can_approve_step, deps.people, scope, request, actor))
        granting.require_current(deps, request, shown_for, actor, "approve")  # on the row this loop's CAS compares with
        require_pending(deps, request)
        approvals = (*request.approvals, actor)
        step_index, _ = step_progress(scope, request.approvals)  # the step this approval counts for
        if len(approvals) >= request.approval.required:
            approval = request.with_approval(given=approvals, decided_by=actor, decided_at=deps.clock.now())
            updated = request.advance(Event.APPROVED, approval=approval)
            # The approvers' message is re-rendered by the issue that follows at once (its notices).
            saved = deps.commit(request, updated, Event.APPROVED, actor, approvers=list(approvals))
        else:
            updated = request.advance(Event.APPROVAL_ADDED, approval=request.with_approval(given=approvals))
            notices = [outbox.changed(request.id)]
            if step_progress(scope, updated.approvals)[0] > step_index:  # a step completed: tell the next one
                notices.append(outbox.opened(request.id, deps.waiting_approvers(scope, updated)))
            saved = deps.commit(
                request,
                updated,
                Event.APPROVAL_ADDED,
                actor,
                notices=notices,
                approvers=list(approvals),
                step=step_index + 1,
                step_name=scope.steps[step_index].name,
                approvals_required=request.approval.required,
            )
        if saved:
            break  # lost a race otherwise: reload and decide again on the current state
    if updated.state is State.APPROVED:
        return granting.issue(deps, updated)  # straight to Vault; the credential DM names the approvers
    return updated


def deny(deps: Deps, request_id: str, actor: str, reason: str = "", shown_for: str = "r") -> Request:
    while True:
        request = deps.load(request_id)
        scope = deps.scope(request.scope)
        deps.guard(request, actor, "deny", partial(guards.require_can_decide, deps.people, scope, request, actor))
        granting.require_current(deps, request, shown_for, actor, "deny")
        require_pending(deps, request)
        now = deps.clock.now()
        updated = request.advance(Event.DENIED, approval=request.with_approval(decided_by=actor, decided_at=now), ended_at=now)
        notices = [outbox.changed(request.id), outbox.told(request.id, Event.DENIED, reason=reason)]
        if deps.commit(request, updated, Event.DENIED, actor, notices=notices, reason=reason):
            break
    return updated


def cancel(deps: Deps, request_id: str, actor: str) -> Request:
    while True:
        request = deps.load(request_id)
        deps.guard(request, actor, "cancel", partial(guards.require_requester_of, request, actor, "cancel"))
        if request.state is not State.PENDING:
            raise AlreadyDecided(f"{request.id} is already {request.state}; only pending requests can be cancelled.")
        now = deps.clock.now()
        approval = request.with_approval(decided_by=actor, decided_at=now)
        updated = request.advance(Event.CANCELLED, approval=approval, ended_at=now)
        if deps.commit(request, updated, Event.CANCELLED, actor, notices=[outbox.changed(request.id)]):
            break
    return updated


def revoke(deps: Deps, request_id: str, actor: str) -> Request:
    """End a grant now ("I'm done" when it is the requester); a pending request of one's own is cancelled."""
    request = deps.load(request_id)
    scope = deps.scope(request.scope)
    deps.guard(request, actor, "revoke", partial(guards.require_can_revoke, deps.people, scope, request, actor))
    if request.state is State.PENDING and actor == request.requester:
        return cancel(deps, request_id, actor)
    if request.state is not State.ACTIVE:
        raise AlreadyDecided(f"{request.id} is {request.state}, not an active grant; there is nothing to revoke.")
    return granting.end(deps, request, Event.REVOKED, actor)
