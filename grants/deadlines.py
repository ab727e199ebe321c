"""Deadline arithmetic: reminders, escalation, expiry warnings, nudges, and the next moment a timer must wake."""

from __future__ import annotations

from datetime import datetime, timedelta

from grants.catalog import Scope
from grants.domain import Request, State

DEFAULT_NUDGE_INTERVAL = timedelta(minutes=15)
# An approval still not issued this long after its decision was interrupted between the decision and Vault.
STUCK_APPROVAL_AFTER = timedelta(seconds=15)


def next_reminder(scope: Scope, request: Request) -> datetime | None:
    """Reminders back off by doubling: after r, 3r, 7r, … from the request."""
    remind = scope.remind_after
    if remind is None:
        return None
    at: datetime = request.created_at + remind * (2 ** (request.approval.reminders_sent + 1) - 1)
    return at


def escalation_at(scope: Scope, request: Request) -> datetime | None:
    escalate = scope.escalate_after
    return None if escalate is None or request.approval.escalated else request.created_at + escalate


def warning_at(scope: Scope, request: Request) -> datetime | None:
    grant = request.grant
    if grant is None or grant.warned:
        return None
    at = grant.expires_at - scope.warn_before
    return at if at > grant.issued_at else None


def next_wake(scope: Scope | None, request: Request) -> datetime | None:
    """The earliest moment a timer has to look at this request again (None: never)."""
    moments: list[datetime | None] = []
    if request.state is State.PENDING:
        moments.append(request.pending_until)
        if scope is not None:
            moments += [next_reminder(scope, request), escalation_at(scope, request)]
    elif request.state is State.APPROVED and request.starts_at is not None:
        moments.append(request.starts_at)  # approved ahead: issued at its start (retried from then until it is)
    elif request.state is State.APPROVED and request.approval.decided_at is not None:
        moments.append(request.approval.decided_at + STUCK_APPROVAL_AFTER)
    elif request.state is State.ACTIVE:
        moments.append(request.expires_at)
        if scope is not None:
            moments.append(warning_at(scope, request))
    if request.review is not None and request.review.state == "open":
        moments.append(request.review.due_at)
    found = [m for m in moments if m is not None]
    return min(found) if found else None


def nudge_interval(scope: Scope) -> timedelta:
    return scope.remind_after or DEFAULT_NUDGE_INTERVAL
