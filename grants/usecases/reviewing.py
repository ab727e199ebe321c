"""The post-hoc review of a break-glass grant, closed by an approver of the scope (never its requester)."""

from __future__ import annotations

from functools import partial

from grants import guards, outbox
from grants.domain import AlreadyDecided, InvalidRequest, Request, Review
from grants.lifecycle import Event
from grants.outbox import Alert
from grants.usecases.deps import Deps

OUTCOMES = {"acknowledged": Event.REVIEW_ACKNOWLEDGED, "flagged": Event.REVIEW_FLAGGED}


def review(deps: Deps, request_id: str, actor: str, outcome: str, note: str = "") -> Request:
    """Close a break-glass review as acknowledged or flagged."""
    event = OUTCOMES.get(outcome)
    if event is None:
        raise InvalidRequest("A review ends as `acknowledged` or `flagged`.", field="outcome")
    request = deps.load(request_id)
    scope = deps.scope(request.scope)
    deps.guard(request, actor, "review", partial(guards.require_can_decide, deps.people, scope, request, actor))
    if request.review is None or request.review.state != "open":
        raise AlreadyDecided(f"{request.id} has no open review (it is {request.review_state or 'not break-glass'}).")
    updated = request.advance(event, review=Review(outcome, request.review.due_at, actor))
    notices = [outbox.changed(request.id), outbox.told(request.id, event, actor=actor, note=note)]
    if event is Event.REVIEW_FLAGGED:
        notices.append(outbox.alert(Alert.REVIEW_FLAGGED, request.id, actor=actor, note=note))
    if not deps.commit(request, updated, event, actor, notices=notices, note=note):
        raise AlreadyDecided(f"The review of {request.id} was closed a moment ago.")
    return updated
