"""What the catalog allows without a fresh human decision: auto-approval rules and room for extensions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from grants.catalog import AutoApprove, Scope
from grants.domain import Request
from grants.oncall import Shift
from grants.people import People

Shifts = Callable[[str], dict[str, Shift]]  # schedule -> who is on call in it now, by Slack user ID


def auto_grant(
    people: People, scope: Scope, requester: str, duration: timedelta, shifts: Shifts, now: datetime
) -> tuple[AutoApprove, Shift | None] | None:
    """The first auto-approval rule that covers this requester and duration, with the on-call shift it rested on.
    An `on_call` rule holds only while the requester is on call at an allowed level (asked now, never assumed)."""
    for rule in scope.auto_approve:
        if duration > rule.max_duration or (rule.requesters and not people.in_rule(rule.requesters, requester)):
            continue
        if rule.on_call is None:
            return rule, None
        shift = shifts(rule.on_call.schedule).get(requester)
        if shift is None or (rule.on_call.max_escalation_level or shift.escalation_level) < shift.escalation_level:
            continue
        if shift.end is not None and shift.end <= now:
            continue
        return rule, shift
    return None


def on_call_rule(people: People, scope: Scope, requester: str, duration: timedelta) -> AutoApprove | None:
    """The first on-call rule that would approve this request if its requester is on call now (PagerDuty is asked
    after the ack, so the ack can only say so)."""
    for rule in scope.auto_approve:
        if (
            rule.on_call is not None
            and duration <= rule.max_duration
            and (not rule.requesters or people.in_rule(rule.requesters, requester))
        ):
            return rule
    return None


def auto_rule(
    people: People, scope: Scope, requester: str, duration: timedelta, shifts: Shifts, now: datetime
) -> AutoApprove | None:
    found = auto_grant(people, scope, requester, duration, shifts, now)
    return found[0] if found else None


def extension_room(scope: Scope, request: Request) -> timedelta:
    """How much longer the grant may still be made, under `max_total_duration` and `max_extensions`."""
    extensions = request.grant.extensions if request.grant else 0
    if request.break_glass or extensions >= scope.max_extensions:
        return timedelta(0)
    return max(timedelta(0), scope.max_total - request.duration)
