"""Catalog keys that bind approvals to context: trackers and a scope's ticket rule, on-call (`[settings.oncall]`,
`oncall:SCHEDULE` principals, auto-approval `on_call`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from grants.durations import Duration

if TYPE_CHECKING:
    from grants.catalog import Catalog, ScopeBase

TRACKER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # becomes JITBOT_TRACKER_<NAME>_TOKEN
# How a reason cites a ticket, per tracker kind: Jira's PROJ-123, Redmine's #123.
CITATIONS = {
    "jira": re.compile(r"\b([A-Z][A-Z0-9_]{0,9}-[1-9][0-9]{0,9})\b"),
    "redmine": re.compile(r"(?<![\w&])#([1-9][0-9]{0,9})\b"),
}
EXAMPLES = {"jira": "PROJ-123", "redmine": "#123"}
JIRA_FIELD = re.compile(r"^(customfield_[0-9]{1,10}|[a-z][a-zA-Z]{1,31})$")  # customfield_10022, duedate
SCHEDULE_ID = re.compile(r"^[PQ][A-Z0-9]{6,13}$")  # PagerDuty object IDs, e.g. P1A2B3C


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackerSettings(_Strict):
    """One ticket tracker: its kind and base URL. Its token comes from JITBOT_TRACKER_<NAME>_TOKEN, never the catalog."""

    kind: Literal["redmine", "jira"]
    url: str
    # chat user ID -> the tracker's user (Redmine user ID, Jira accountId), for `assignee_is_requester`.
    accounts: dict[str, str] = {}
    # Jira: the two fields holding a ticket's change window, start then end (Jira has no standard one; Jira Service
    # Management's planned start and end are custom fields whose IDs each site sees in its field list).
    window_fields: tuple[str, str] | None = None

    @field_validator("window_fields")
    @classmethod
    def _fields(cls, value: tuple[str, str] | None) -> tuple[str, str] | None:
        if value is not None and not all(JIRA_FIELD.match(f) for f in value):
            raise ValueError('must be two Jira field IDs, start then end, e.g. ["customfield_10022", "customfield_10023"]')
        return value


class OnCallSettings(_Strict):
    """`[settings.oncall]`: PagerDuty, its token from JITBOT_ONCALL_TOKEN (never the catalog)."""

    kind: Literal["pagerduty"] = "pagerduty"
    url: str = "https://api.pagerduty.com"
    # Slack user ID -> PagerDuty user ID: who a shift's user is in Slack (nobody unlisted counts as on call).
    accounts: dict[str, str] = {}
    cache: Duration = Duration("30s")  # how long a schedule's answer is reused


class OnCallRule(_Strict):
    """An auto-approval's condition: the requester is on call in `schedule` now, at a level up to the maximum."""

    schedule: str
    max_escalation_level: int | None = Field(default=None, ge=1)


class TicketRule(_Strict):
    """`[scopes.X.ticket]`: the ticket a request's reason must cite, and what it must be."""

    tracker: str
    required: bool = True  # the reason must cite a ticket; the tracker being down then refuses the request
    must_be_open: bool = True
    assignee_is_requester: bool = False
    end_when_closed: bool = False  # the grant ends when its ticket is closed or resolved
    within_window: bool = False  # the ticket's change window (Redmine: start to due date; Jira: window_fields) bounds the grant


class ContextFields(BaseModel):
    """Per scope: the ticket rule (none by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket: TicketRule | None = None


class ContextSettings(BaseModel):
    """In `[settings]`: the trackers scopes may name, and the on-call source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trackers: dict[str, TrackerSettings] = Field(default_factory=dict)
    oncall: OnCallSettings | None = None


def cited_ticket(kind: str, reason: str) -> str | None:
    """The first ticket key the reason cites for a tracker of `kind` (`PROJ-123`, or `123` for Redmine's `#123`)."""
    found = CITATIONS[kind].search(reason)
    return found.group(1) if found else None


def context_problems(catalog: Catalog) -> list[str]:
    """What `jitbot check` says about trackers and ticket rules, all at once."""
    problems: list[str] = []
    trackers = catalog.settings.trackers
    for name, tracker in trackers.items():
        where = f"settings.trackers.{name}"
        if not TRACKER_NAME.match(name):
            problems.append(
                f"{where}: tracker names use lowercase letters, digits and `_` (it names JITBOT_TRACKER_<NAME>_TOKEN)"
            )
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", tracker.url):
            problems.append(f"{where}.url: `{tracker.url}` is not a base URL such as https://tracker.example.com")
    oncall = catalog.settings.oncall
    if oncall is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", oncall.url):
        problems.append(f"settings.oncall.url: `{oncall.url}` is not a base URL such as https://api.pagerduty.com")
    for name, scope in catalog.scopes.items():
        problems += _oncall_problems(catalog, name, scope)
        rule = scope.ticket
        if rule is None:
            continue
        where = f"scopes.{name}.ticket"
        if rule.tracker not in trackers:
            known = ", ".join(f"`{t}`" for t in trackers) or "none"
            problems.append(
                f"{where}.tracker: unknown tracker `{rule.tracker}`; define it under [settings.trackers.{rule.tracker}] (defined: {known})"
            )
        if rule.end_when_closed and not rule.required:
            problems.append(
                f"{where}.end_when_closed: needs `required = true` (a grant without a ticket has nothing to end with)"
            )
        cited = trackers.get(rule.tracker)
        windowed = cited is None or cited.kind == "redmine" or cited.window_fields is not None
        if rule.within_window and (not rule.required or not windowed):
            problems.append(
                f"{where}.within_window: needs `required = true` and a tracker with change windows (Redmine's start and "
                f"due dates, or Jira's `window_fields` under [settings.trackers.{rule.tracker}])"
            )
    for name, tracker in trackers.items():
        if tracker.window_fields is not None and tracker.kind != "jira":
            problems.append(
                f"settings.trackers.{name}.window_fields: only for Jira (Redmine's window is its start and due dates)"
            )
    return problems


def schedule_problem(where: str, value: str, catalog: Catalog) -> str | None:
    """What is wrong with an `oncall:SCHEDULE` principal (or an `on_call.schedule`), if anything."""
    schedule = value.removeprefix("oncall:")
    if not SCHEDULE_ID.match(schedule):
        return f"{where}: `{value}` is not a PagerDuty schedule ID (e.g. oncall:P1A2B3C)"
    if catalog.settings.oncall is None:
        return f"{where}: `{value}` needs [settings.oncall] (PagerDuty) to say who is on call"
    return None


def _oncall_problems(catalog: Catalog, name: str, scope: ScopeBase) -> list[str]:
    problems: list[str] = []
    for i, rule in enumerate(scope.auto_approve):
        where = f"scopes.{name}.auto_approve[{i}]"
        if rule.on_call is not None:
            problem = schedule_problem(f"{where}.on_call.schedule", rule.on_call.schedule, catalog)
            problems += [problem] if problem else []
        elif rule.end_with_shift:
            problems.append(f"{where}.end_with_shift: needs `on_call` (there is no shift to end with)")
        if rule.on_call is None and not rule.requesters:
            problems.append(f"{where}: name the `requesters` (or an `on_call` schedule) the rule approves")
    return problems
