"""Deciding a pending request: approve (step by step), deny, cancel; and ending a grant early (revoke)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

from grants import guards, outbox
from grants.catalog import Scope
from grants.domain import AlreadyDecided, InvalidRequest, NotAllowed, NotFound, Request, State, open_decision
from grants.durations import format_duration
from grants.lifecycle import Event
from grants.signin import SignIn
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


def check_approve(deps: Deps, request_id: str, actor: str, shown_for: str = "r") -> Request:
    """Everything `approve` checks before it writes (audited alike): the step-up page asks before Vault is touched."""
    request = deps.load(request_id)
    scope = deps.scope(request.scope)
    deps.guard(request, actor, "approve", partial(guards.require_can_approve_step, deps.people, scope, request, actor))
    granting.require_current(deps, request, shown_for, actor, "approve")  # on the row this loop's CAS compares with
    require_pending(deps, request)
    return request


def approve(
    deps: Deps,
    request_id: str,
    actor: str,
    shown_for: str = "r",
    sign_in: SignIn | None = None,
    duration: timedelta | None = None,
) -> Request:
    """`sign_in`: the step-up evidence, required (by this function, not by the button) where the scope or step asks.
    `duration`: the approver approves for less than was asked (never more); the grant gets the shortest any approver gave."""
    while True:
        request = check_approve(deps, request_id, actor, shown_for)
        scope = deps.scope(request.scope)
        deps.guard(request, actor, "approve", partial(guards.require_sign_in, scope, request, actor, sign_in))
        evidence: dict[str, Any] = {"sign_in": sign_in.audit()} if sign_in is not None else {}
        asked = request
        if duration is not None:
            request, evidence = shortened(scope, request, duration), evidence | {
                "approved_for": format_duration(duration), "asked": format_duration(request.duration)
            }  # fmt: skip
        approvals = (*request.approvals, actor)
        step_index, _ = step_progress(scope, request.approvals)  # the step this approval counts for
        if len(approvals) >= request.approval.required:
            approval = request.with_approval(given=approvals, decided_by=actor, decided_at=deps.clock.now())
            updated = request.advance(Event.APPROVED, approval=approval)
            # The approvers' message is re-rendered by the issue that follows at once (its notices); approved ahead of a
            # later start, nothing follows until then, so the message and the requester are told now.
            ahead = updated.starts_at is not None and deps.clock.now() < updated.starts_at
            told = [outbox.changed(request.id), outbox.told(request.id, Event.APPROVED)] if ahead else []
            if duration is not None and not ahead:  # the requester sees that they got less than they asked for
                told.append(outbox.told(request.id, Event.APPROVED, asked=format_duration(asked.duration)))
            saved = deps.commit(asked, updated, Event.APPROVED, actor, notices=told, approvers=list(approvals), **evidence)
        else:
            updated = request.advance(Event.APPROVAL_ADDED, approval=request.with_approval(given=approvals))
            notices = [outbox.changed(request.id)]
            if step_progress(scope, updated.approvals)[0] > step_index:  # a step completed: tell the next one
                notices.append(outbox.opened(request.id, deps.waiting_approvers(scope, updated)))
            saved = deps.commit(
                asked,
                updated,
                Event.APPROVAL_ADDED,
                actor,
                notices=notices,
                approvers=list(approvals),
                step=step_index + 1,
                step_name=scope.steps[step_index].name,
                approvals_required=request.approval.required,
                **evidence,
            )
        if saved:
            break  # lost a race otherwise: reload and decide again on the current state
    if updated.state is State.APPROVED:
        return granting.issue(deps, updated)  # straight to Vault; the credential DM names the approvers
    return updated


def shortened(scope: Scope, request: Request, duration: timedelta) -> Request:
    """The request as approved for `duration`: less than asked (and than any earlier approver gave), at least the
    scope's minimum. A later start's window shrinks with it."""
    if duration >= request.duration and request.approvals:
        return request  # an earlier approver gave less already: the shortest holds
    if duration >= request.duration:
        raise InvalidRequest(
            f"Approve for less only shortens: {request.id} asks for {format_duration(request.duration)}; use Approve.",
            field="duration",
        )
    if duration < scope.min_duration:
        raise InvalidRequest(f"`{request.scope}` is granted for at least {scope.min_duration}.", field="duration")
    window = request.starts_at + duration if request.starts_at is not None else request.not_after
    return replace(request, duration=duration, not_after=min(filter(None, [window, request.not_after]), default=None))


def may_decide(deps: Deps, request_id: str, actor: str, shown_for: str = "r") -> bool:
    """Would `deny` (of the request, or of its extension `eN`) by `actor` be considered now? Read-only: it writes no
    event, so a caller asking before it opens a form must still call `deny`, which checks again and audits a refusal."""
    try:
        request = deps.load(request_id)
    except NotFound:
        return False
    scope = deps.catalog.scopes.get(request.scope)
    if scope is None or open_decision(request) != shown_for:
        return False  # decided, ended, or the button was shown for another decision (stale)
    if request.state is State.PENDING and deps.clock.now() >= request.pending_until:
        return False  # out of time: `deny` ends it and says so
    check = guards.require_can_decide_extension if shown_for.startswith("e") else guards.require_can_decide
    try:
        check(deps.people, scope, request, actor)
    except NotAllowed:
        return False
    return True


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
    granting.release_hold(deps, scope, updated)
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
    granting.release_hold(deps, deps.scope(request.scope), updated)
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
