"""Asking for elevation: a normal request (maybe auto-approved by a catalog rule) and break-glass."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

from grants import allowances, deadlines, guards, inputs, outbox
from grants.catalog import Scope
from grants.domain import (
    AlreadyDecided,
    AlreadyOpen,
    Approval,
    AskNormally,
    ExtensionOffered,
    InvalidRequest,
    Request,
    Review,
    SshKeyMissing,
    State,
    new_request_id,
)
from grants.durations import format_duration, parse_duration
from grants.lifecycle import OPEN, Event
from grants.usecases import granting
from grants.usecases.deps import Deps


def request(
    deps: Deps,
    requester: str,
    scope_name: str,
    duration_text: str | None,
    reason: str,
    on_behalf_of: str | None = None,
    defer_issue: bool = False,
) -> Request:
    """A new request, offered to the first step's approvers; one a catalog rule auto-approves is issued at once,
    or (`defer_issue`) left APPROVED for `granting.issue_approved` so that Slack is acknowledged before Vault."""
    scope = deps.scope(scope_name)
    try:
        guards.require_requester(deps.people, scope_name, scope, requester)
    except InvalidRequest:
        deps.reject(requester, "request", "not_a_requester", None, scope=scope_name)  # probing is audited too
        raise
    require_budget(deps, requester, scope_name)
    subject = checked_service(deps, requester, scope_name, scope, on_behalf_of)
    require_ssh_key(deps, requester, scope_name, scope)
    duration = inputs.checked_duration(scope_name, scope, duration_text)
    reason = inputs.checked_reason(scope_name, scope, reason)
    refuse_duplicate(deps, requester, scope_name, scope)
    new = replace(_new(deps, requester, scope_name, scope, duration, reason), on_behalf_of=subject)
    rule = allowances.auto_rule(deps.people, scope, requester, duration)
    approvers = deps.people.approvers(scope) - {requester}
    first_step = deps.people.step_approvers(scope.steps[0], scope, False) - {requester}
    opened = [] if rule is not None else [outbox.opened(new.id, first_step)]
    create(deps, new, scope, requester, notices=opened, **request_detail(new, scope, approvers))
    if rule is not None:
        # Policy as data: the rule that fired is recorded, and `system` is the approver of record.
        approved = new.advance(Event.APPROVED, approval=new.with_approval(decided_by="system", decided_at=deps.clock.now()))
        notices = [outbox.told(new.id, outbox.News.AUTO_APPROVED, rule=rule.name)]
        deps.commit(
            new, approved, Event.APPROVED, "system", notices=notices, auto_approve=rule.name or "auto_approve", approvers=[]
        )
        return approved if defer_issue else granting.issue_approved(deps, approved)
    return new


def break_glass(
    deps: Deps, requester: str, scope_name: str, duration_text: str | None, reason: str, defer_issue: bool = False
) -> Request:
    """Issue at once for people the catalog allows; approvers are told loudly and must review afterwards.
    With `defer_issue` the request is left APPROVED for `granting.issue_approved`, so Slack is answered first."""
    scope = deps.scope(scope_name)
    glass = scope.break_glass
    if glass is None or not deps.people.in_rule(glass.requesters, requester):
        # Trying to bypass approval without the right to is a security refusal: audited.
        deps.reject(requester, "break_glass", "not_break_glass_eligible", None, scope=scope_name)
        raise AskNormally(f"Break-glass is not available to you for `{scope_name}`.", field="scope", scope=scope_name)
    require_budget(deps, requester, scope_name)
    duration = inputs.checked_duration(scope_name, scope, duration_text or glass.max_duration)
    if duration > glass.max:
        raise InvalidRequest(f"Break-glass on `{scope_name}` is capped at {glass.max_duration}.", field="duration")
    if not reason.strip():
        raise InvalidRequest("Break-glass always needs a reason: say what is on fire.", field="reason")
    reason = inputs.checked_reason(scope_name, scope, reason)
    require_ssh_key(deps, requester, scope_name, scope)
    refuse_duplicate(deps, requester, scope_name, scope)
    now = deps.clock.now()
    new = _new(deps, requester, scope_name, scope, duration, reason)
    new = replace(new, break_glass=True, review=Review("open", now + glass.review_delta))
    approvers = deps.people.approvers(scope) - {requester}
    create(deps, new, scope, requester, [], break_glass=True, **request_detail(new, scope, approvers))
    approved = new.advance(Event.APPROVED, approval=new.with_approval(decided_by="system", decided_at=now))
    deps.commit(new, approved, Event.APPROVED, "system", break_glass=True, review_within=glass.review_within)
    return approved if defer_issue else granting.issue_approved(deps, approved)


def create(deps: Deps, new: Request, scope: Scope, requester: str, notices: list[outbox.Notice], **detail: Any) -> None:
    try:
        deps.create(new, requester, notices, **detail)
    except AlreadyOpen:
        # A concurrent twin got in first (the database refused ours): answer as if we had seen it before.
        refuse_duplicate(deps, requester, new.scope, scope)
        raise


def require_budget(deps: Deps, requester: str, scope_name: str) -> None:
    """A per-person budget of new requests: nobody can flood the approvers by asking and cancelling in a loop."""
    settings = deps.catalog.settings
    window = parse_duration(settings.request_window)
    if deps.store.count_requests(requester, deps.clock.now() - window) >= settings.request_budget:
        deps.reject(requester, "request", "rate_limited", None, scope=scope_name)
        raise InvalidRequest(
            f"You have asked for access {settings.request_budget} times in the last {settings.request_window}; "
            "that is the limit. Use what you asked for, or wait a few minutes and ask again.",
            field="scope",
        )


def checked_service(deps: Deps, requester: str, scope_name: str, scope: Scope, service: str | None) -> str | None:
    """The `entity:NAME` a request is on behalf of: only for vault_identity scopes, only a service the scope lists."""
    if service is None:
        return None
    subject = service if service.startswith("entity:") else f"entity:{service}"
    if not scope.services:
        raise AskNormally(
            f"`{scope_name}` cannot be requested for a service; only vault_identity scopes that list services can.",
            field="scope",
            scope=scope_name,
        )
    if subject not in scope.services:
        # Naming a service the catalog does not list is an attempt to widen a grant: audited.
        deps.reject(requester, "request_on_behalf", "service_not_listed", None, scope=scope_name)
        listed = ", ".join(f"`{s.removeprefix('entity:')}`" for s in scope.services)
        raise InvalidRequest(f"`{scope_name}` cannot be requested for `{service}`; its services are {listed}.", field="scope")
    return subject


def require_ssh_key(deps: Deps, requester: str, scope_name: str, scope: Scope) -> None:
    """A kind that certifies the requester's registered key (ssh) has nothing to sign without one."""
    if scope.needs_public_key and deps.store.ssh_key(requester) is None:
        raise SshKeyMissing(
            f"`{scope_name}` gives an SSH certificate for your public key, and you have none registered.", field="public_key"
        )


def refuse_duplicate(deps: Deps, requester: str, scope_name: str, scope: Scope) -> None:
    for open_request in deps.store.find(states=OPEN, requester=requester):
        if open_request.scope != scope_name:
            continue
        if open_request.state is State.ACTIVE and allowances.extension_room(scope, open_request):
            raise ExtensionOffered(
                f"You already hold `{scope_name}` ({open_request.id}) until {open_request.expires_at:%Y-%m-%d %H:%M:%S} UTC.",
                request_id=open_request.id,
            )
        raise AlreadyOpen(
            f"You already have {open_request.id} for `{scope_name}` ({open_request.state}).",
            field="scope",
            request_id=open_request.id,
        )


def _new(deps: Deps, requester: str, scope_name: str, scope: Scope, duration: timedelta, reason: str) -> Request:
    now = deps.clock.now()
    return Request(
        id=new_request_id(),
        scope=scope_name,
        requester=requester,
        duration=duration,
        reason=reason,
        state=State.PENDING,
        created_at=now,
        pending_until=now + deps.catalog.settings.pending_timeout_delta,
        approval=Approval(required=scope.approvals_needed),
    )


def request_detail(request: Request, scope: Scope, approvers: frozenset[str]) -> dict[str, Any]:
    on_behalf = {"on_behalf_of": request.on_behalf_of} if request.on_behalf_of else {}
    return on_behalf | {
        "duration": format_duration(request.duration),
        "duration_seconds": int(request.duration.total_seconds()),
        "reason": request.reason,
        "approvers": sorted(approvers),
        "approvals_required": scope.approvals_needed,
        "steps": [{"name": s.name, "approvals": s.approvals} for s in scope.steps],
    }


def nudge(deps: Deps, request_id: str, actor: str) -> Request:
    """The requester reminds the waiting approvers, at most once per reminder interval."""
    request = deps.load(request_id)
    deps.guard(request, actor, "nudge", partial(guards.require_requester_of, request, actor, "nudge"))
    scope = deps.scope(request.scope)
    if request.state is not State.PENDING:
        raise AlreadyDecided(f"{request.id} is {request.state}; only a pending request can be nudged.")
    now, interval, last = deps.clock.now(), deadlines.nudge_interval(scope), request.approval.nudged_at
    if last is not None and now - last < interval:
        again = last + interval
        raise InvalidRequest(f"You nudged {request.id} already; you can nudge again after {again:%H:%M} UTC.", field="nudge")
    updated = request.advance(Event.NUDGED, approval=request.with_approval(nudged_at=now))
    deps.commit(
        request,
        updated,
        Event.NUDGED,
        actor,
        notices=[outbox.notice(request.id, deps.waiting_approvers(scope, updated), "nudge")],
    )
    return updated
