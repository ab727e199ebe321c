"""What the catalog allows without a fresh human decision: auto-approval rules and room for extensions."""

from __future__ import annotations

from datetime import timedelta

from grants.catalog import AutoApprove, Scope
from grants.domain import Request
from grants.people import People


def auto_rule(people: People, scope: Scope, requester: str, duration: timedelta) -> AutoApprove | None:
    """The first auto-approval rule that covers this requester and duration."""
    for rule in scope.auto_approve:
        if duration <= rule.max and people.in_rule(rule.requesters, requester):
            return rule
    return None


def extension_room(scope: Scope, request: Request) -> timedelta:
    """How much longer the grant may still be made, under `max_total_duration` and `max_extensions`."""
    extensions = request.grant.extensions if request.grant else 0
    if request.break_glass or extensions >= scope.max_extensions:
        return timedelta(0)
    return max(timedelta(0), scope.max_total - request.duration)
