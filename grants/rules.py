"""Small named predicates: who may request, approve, revoke and audit, and what a valid request is."""

from __future__ import annotations

import re
from datetime import timedelta

from grants.catalog import Catalog, Scope
from grants.domain import InvalidRequest, NotAllowed, Request, State
from grants.durations import DURATION_EXAMPLES, DurationError, format_duration, parse_duration
from grants.people import People
from grants.policy import current_step, extension_room
from grants.text import UnsafeText, require_plain


def scope_of(catalog: Catalog, name: str) -> Scope:
    scope = catalog.scopes.get(name)
    if scope is None:
        known = ", ".join(sorted(catalog.scopes))
        raise InvalidRequest(f"There is no scope `{name}`. Known scopes: {known}.", field="scope")
    return scope


def checked_duration(scope_name: str, scope: Scope, text: str | None) -> timedelta:
    """The requested duration, or the scope's default; it must lie within the scope's bounds."""
    if not text:
        return scope.default
    try:
        duration = parse_duration(text)
    except DurationError as exc:
        raise InvalidRequest(str(exc), field="duration") from None
    if not (scope.min <= duration <= scope.max):
        raise InvalidRequest(
            f"`{scope_name}` can be granted for {scope.min_duration} to {scope.max_duration}; "
            f"you asked for {format_duration(duration)} (durations look like {DURATION_EXAMPLES}).",
            field="duration",
        )
    return duration


def checked_reason(scope_name: str, scope: Scope, reason: str) -> str:
    try:  # checked before whitespace is folded: split() would silently eat some control characters
        require_plain(reason, "the reason")
    except UnsafeText as exc:
        raise InvalidRequest(str(exc), field="reason") from None
    reason = " ".join(reason.split())
    if scope.require_reason and not reason:
        raise InvalidRequest(f"`{scope_name}` needs a reason, e.g. a ticket: INC-4411 replay stuck refunds.", field="reason")
    if scope.reason_pattern and not re.search(scope.reason_pattern, reason):
        raise InvalidRequest(
            f"The reason for `{scope_name}` must match `{scope.reason_pattern}` (for example a ticket ID).",
            field="reason",
        )
    if len(reason) > 500:
        raise InvalidRequest("Keep the reason under 500 characters; link a ticket for the details.", field="reason")
    return reason


def require_requester(people: People, scope_name: str, scope: Scope, user: str) -> None:
    if not people.can_request(scope, user):
        raise InvalidRequest(
            f"You are not among the requesters of `{scope_name}`. Scopes you can request: "
            f"{', '.join(people.requestable_by(user)) or 'none'}.",
            field="scope",
        )


def require_can_decide(people: People, scope: Scope, request: Request, actor: str) -> None:
    # Sign-off by someone other than the requester is the core guardrail: even an approver
    # of the scope may never decide their own request.
    if actor == request.requester:
        raise NotAllowed("You cannot approve or deny your own request.", rule="self_approval")
    # Buttons carry only the request ID; the clicking user is re-authorized here, never trusted.
    if actor not in people.approvers(scope, request.escalated):
        raise NotAllowed(f"You are not an approver of `{request.scope}`.", rule="not_an_approver")


def require_can_approve_step(people: People, scope: Scope, request: Request, actor: str) -> None:
    """Approvals go step by step; a person approves at most one step of a request."""
    require_can_decide(people, scope, request, actor)
    if request.state is not State.PENDING:
        return  # a double click after the decision: the state check answers "already decided"
    if actor in request.approvals:
        raise NotAllowed(f"You already approved {request.id}; one person approves at most one step.", rule="one_step_per_person")
    step = current_step(scope, request)
    if step is None:
        return  # nothing left to approve: the state check reports "already decided"
    if actor not in people.step_approvers(step, scope, request.escalated):
        raise NotAllowed(
            f"{request.id} waits for step `{step.name or 'approval'}`, which you are not an approver of.", rule="not_this_step"
        )


def checked_extension(scope: Scope, request: Request, duration_text: str | None) -> timedelta:
    room = extension_room(scope, request)
    if request.break_glass:
        raise InvalidRequest("Break-glass grants cannot be extended; request the scope normally.", field="duration")
    if room <= timedelta(0):
        raise InvalidRequest(
            f"`{request.scope}` allows {scope.max_extensions} extension(s) and at most "
            f"{format_duration(scope.max_total)} in all; {request.id} has no room left. Request it again if you must.",
            field="duration",
        )
    if not duration_text:
        return min(scope.default, room)
    try:
        added = parse_duration(duration_text)
    except DurationError as exc:
        raise InvalidRequest(str(exc), field="duration") from None
    if added > room:
        raise InvalidRequest(f"{request.id} can be extended by at most {format_duration(room)}.", field="duration")
    return added


def require_can_revoke(people: People, scope: Scope, request: Request, actor: str) -> None:
    if actor == request.requester or actor in people.approvers(scope) or actor in people.admins():
        return
    raise NotAllowed(
        f"Only the requester, an approver of `{request.scope}` or an admin can revoke {request.id}.",
        rule="not_allowed_to_revoke",
    )


def require_requester_of(request: Request, actor: str, action: str) -> None:
    if actor != request.requester:
        raise NotAllowed(f"Only the requester can {action} {request.id}.", rule="not_the_requester")
