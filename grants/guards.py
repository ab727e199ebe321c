"""Small named predicates on who may do what: request, decide, approve a step, revoke, act as the requester."""

from __future__ import annotations

from grants.approval_catalog import needs_step_up
from grants.catalog import Scope
from grants.domain import InvalidRequest, NotAllowed, Request, State
from grants.people import People
from grants.signin import SignIn
from grants.steps import current_step


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
    if actor not in people.approvers(scope, request.approval.escalated):
        raise NotAllowed(f"You are not an approver of `{request.scope}`.", rule="not_an_approver")


def require_can_decide_extension(people: People, scope: Scope, request: Request, actor: str) -> None:
    """An extension is a new grant of time: an approver of the scope decides it, never the requester. Escalation
    only widened who could decide the original request while it waited; it grants no rights over the grant."""
    if actor == request.requester:
        raise NotAllowed("You cannot approve or deny your own request.", rule="self_approval")
    if actor not in people.approvers(scope):
        raise NotAllowed(f"Only an approver of `{request.scope}` can decide its extension.", rule="not_an_approver")


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
    if actor not in people.step_approvers(step, scope, request.approval.escalated):
        raise NotAllowed(
            f"{request.id} waits for step `{step.name or 'approval'}`, which you are not an approver of.", rule="not_this_step"
        )


def require_sign_in(scope: Scope, request: Request, actor: str, sign_in: SignIn | None) -> None:
    """A step-up scope or step is approved only with a fresh sign-in of the approver themself: a Slack click alone (an
    old message, a replayed action, a stolen Slack session) never approves it, whatever path it came by."""
    if request.state is not State.PENDING or not needs_step_up(scope, current_step(scope, request)):
        return
    if sign_in is None or sign_in.slack_user != actor:
        raise NotAllowed(
            f"`{request.scope}` is approved only after a sign-in: use the link jitbot sends you when you click Approve.",
            rule="step_up_required",
        )


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
