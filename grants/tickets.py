"""Tickets as the core sees them: what a tracker answers, why a ticket cannot justify a grant, and its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grants.context_catalog import EXAMPLES, TicketRule


class TrackerUnavailable(Exception):
    """The tracker could not be asked (down, refused our token, answered nonsense): never read as "no ticket"."""


@dataclass(frozen=True)
class Ticket:
    """One ticket as its tracker showed it at one moment."""

    key: str  # as the tracker names it: PROJ-123 (Jira), 123 (Redmine)
    state: str  # the tracker's own status name, e.g. "In Progress", "Closed"
    open: bool  # False once closed or resolved
    assignee: str | None  # the tracker's user ID (Redmine user ID, Jira accountId)
    assignee_name: str | None
    url: str
    window_start: datetime | None = None  # the change window the ticket carries (Redmine: start date to due date)
    window_end: datetime | None = None

    def evidence(self, tracker: str) -> dict[str, Any]:
        """What a decision rested on, for the audit event: key, state, assignee (and window) as seen now."""
        window = (
            {"window": [w.isoformat() if w else None for w in (self.window_start, self.window_end)]} if self.window_end else {}
        )
        return window | {
            "tracker": tracker,
            "key": self.key,
            "state": self.state,
            "open": self.open,
            "assignee": self.assignee,
            "assignee_name": self.assignee_name,
            "url": self.url,
        }


@dataclass(frozen=True)
class TicketRefusal:
    rule: str  # the audited refusal rule
    text: str


def shown(kind: str, key: str) -> str:
    """A key as people write it: `#123` for Redmine, `PROJ-123` for Jira."""
    return f"#{key}" if kind == "redmine" else key


def missing_citation(scope_name: str, tracker: str, kind: str) -> str:
    return f"`{scope_name}` needs a {tracker} ticket in the reason, e.g. `{EXAMPLES[kind]} what you will do`."


def refusal(
    rule: TicketRule, kind: str, key: str, ticket: Ticket | None, account: str | None, at: datetime
) -> TicketRefusal | None:
    """Why this ticket cannot justify the request starting `at` (None: it can). `account`: the requester's user there."""
    name = shown(kind, key)
    if ticket is None:
        return TicketRefusal("ticket_missing", f"There is no ticket {name} in {rule.tracker}; cite an existing one.")
    if rule.must_be_open and not ticket.open:
        return TicketRefusal("ticket_closed", f"{name} is {ticket.state} in {rule.tracker}; cite an open ticket.")
    if rule.assignee_is_requester:
        if account is None:
            return TicketRefusal(
                "ticket_not_assigned",
                f"{name} must be assigned to you, and your Slack ID has no {rule.tracker} account in the catalog "
                f"([settings.trackers.{rule.tracker}] accounts); ask an admin to add it.",
            )
        if ticket.assignee != account:
            who = ticket.assignee_name or "nobody"
            return TicketRefusal(
                "ticket_not_assigned", f"{name} is assigned to {who}, not you; ask with a ticket assigned to you."
            )
    if rule.within_window:
        start, end = ticket.window_start, ticket.window_end
        if end is None:
            return TicketRefusal("ticket_no_window", f"{name} carries no change window (a due date) in {rule.tracker}; set one.")
        if at >= end or (start is not None and at < start):
            shown_start = f"{start:%Y-%m-%d %H:%M}" if start else "now"
            return TicketRefusal(
                "outside_window",
                f"{name}'s change window is {shown_start} to {end:%Y-%m-%d %H:%M} UTC; ask within it (`at <time>` may start later).",
            )
    return None
