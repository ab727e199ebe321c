"""Adapters of the context ports: ticket trackers (Redmine, Jira) and on-call (PagerDuty), over plain HTTP."""

from __future__ import annotations

from collections.abc import Mapping

from grants.context_catalog import TrackerSettings
from grants.ports import Tracker


def trackers(settings: Mapping[str, TrackerSettings], tokens: Mapping[str, str]) -> dict[str, Tracker]:
    """One adapter per configured tracker that has its token (one without is refused at request time, fail closed)."""
    from grants.adapters.context.jira import JiraTracker
    from grants.adapters.context.redmine import RedmineTracker

    made: dict[str, Tracker] = {}
    for name, tracker in settings.items():
        token = tokens.get(name)
        if token is None:
            continue
        if tracker.kind == "redmine":
            made[name] = RedmineTracker(tracker.url, token)
        else:
            made[name] = JiraTracker(tracker.url, token, window_fields=tracker.window_fields)
    return made
