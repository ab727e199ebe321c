"""Pure policy arithmetic: approval-step progress, auto-approval, reminder and wake-up times, extension caps."""

from __future__ import annotations

from datetime import datetime, timedelta

from grants.catalog import AutoApprove, Scope, Step
from grants.domain import Request, State
from grants.people import People

DEFAULT_NUDGE_INTERVAL = timedelta(minutes=15)


def step_progress(scope: Scope, approvals: tuple[str, ...]) -> tuple[int, int]:
    """(index of the step waiting for approvals, approvals it already has); index == len(steps) when done.

    Approvals only ever count for the current step, so the step of each approval follows from the order."""
    remaining = len(approvals)
    steps = scope.steps
    for index, step in enumerate(steps):
        if remaining < step.approvals:
            return index, remaining
        remaining -= step.approvals
    return len(steps), 0


def current_step(scope: Scope, request: Request) -> Step | None:
    index, _ = step_progress(scope, request.approvals)
    return scope.steps[index] if index < len(scope.steps) else None


def auto_rule(people: People, scope: Scope, requester: str, duration: timedelta) -> AutoApprove | None:
    """The first auto-approval rule that covers this requester and duration."""
    for rule in scope.auto_approve:
        if duration <= rule.max and people.in_rule(rule.requesters, requester):
            return rule
    return None


def next_reminder(scope: Scope, request: Request) -> datetime | None:
    """Reminders back off by doubling: after r, 3r, 7r, … from the request."""
    remind = scope.delta("remind_after")
    if remind is None:
        return None
    at: datetime = request.created_at + remind * (2 ** (request.reminders_sent + 1) - 1)
    return at


def escalation_at(scope: Scope, request: Request) -> datetime | None:
    escalate = scope.delta("escalate_after")
    return None if escalate is None or request.escalated else request.created_at + escalate


def warning_at(scope: Scope, request: Request) -> datetime | None:
    if request.warned or request.expires_at is None or request.issued_at is None:
        return None
    warn_before = scope.delta("warn_before") or timedelta(0)
    at = request.expires_at - warn_before
    return at if at > request.issued_at else None


def next_wake(scope: Scope | None, request: Request) -> datetime | None:
    """The earliest moment a timer has to look at this request again (None: never)."""
    moments: list[datetime | None] = []
    if request.state is State.PENDING:
        moments.append(request.pending_until)
        if scope is not None:
            moments += [next_reminder(scope, request), escalation_at(scope, request)]
    elif request.state is State.ACTIVE:
        moments.append(request.expires_at)
        if scope is not None:
            moments.append(warning_at(scope, request))
    if request.review_state == "open":
        moments.append(request.review_due_at)
    found = [m for m in moments if m is not None]
    return min(found) if found else None


def nudge_interval(scope: Scope) -> timedelta:
    return scope.delta("remind_after") or DEFAULT_NUDGE_INTERVAL


def extension_room(scope: Scope, request: Request) -> timedelta:
    """How much longer the grant may still be made, under `max_total_duration` and `max_extensions`."""
    if request.break_glass or request.extensions >= scope.max_extensions:
        return timedelta(0)
    return max(timedelta(0), scope.max_total - request.duration)
