"""Redmine's REST API as a `Tracker`: an issue's status and assignee, and notes added to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from grants.tickets import Ticket, TrackerUnavailable


class RedmineTracker:
    """Issues by number (`123` for `#123`), read and noted with an API key (a user the bot acts as)."""

    def __init__(self, url: str, api_key: str, timeout: float = 5.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers.update({"X-Redmine-API-Key": api_key, "Content-Type": "application/json"})

    def ticket(self, key: str) -> Ticket | None:
        if not key.isdigit():
            return None  # Redmine issues are numbers; anything else names no issue
        response = self._call("GET", f"/issues/{key}.json")
        if response.status_code == 404:
            return None
        issue = _json(response).get("issue")
        if not isinstance(issue, dict) or not isinstance(issue.get("status"), dict):
            raise TrackerUnavailable("Redmine answered without the issue's status")
        status, assigned = issue["status"], issue.get("assigned_to") or {}
        return Ticket(
            key=str(issue["id"]),
            state=str(status.get("name", "")),
            open=not bool(status.get("is_closed", False)),
            assignee=str(assigned["id"]) if "id" in assigned else None,
            assignee_name=assigned.get("name"),
            url=f"{self.url}/issues/{issue['id']}",
            # Redmine's dates are whole days: the window runs from the start date's first moment to the due date's last.
            window_start=_day(issue.get("start_date")),
            window_end=_day(issue.get("due_date"), next_day=True),
        )

    def comment(self, key: str, text: str) -> None:
        response = self._call("PUT", f"/issues/{key}.json", json={"issue": {"notes": text}})
        if response.status_code not in (200, 204):
            raise TrackerUnavailable(f"Redmine answered {response.status_code} to the note")

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise TrackerUnavailable(f"Redmine did not answer ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            # The bot's own key cannot see it: that is not "no such ticket", so it must not pass for one.
            raise TrackerUnavailable(f"Redmine refused the bot's API key ({response.status_code})")
        if response.status_code >= 500:
            raise TrackerUnavailable(f"Redmine answered {response.status_code}")
        return response


def _day(value: object, next_day: bool = False) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    day = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return day + timedelta(days=1) if next_day else day


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise TrackerUnavailable(f"Redmine answered {response.status_code} without JSON") from None
    if response.status_code != 200 or not isinstance(body, dict):
        raise TrackerUnavailable(f"Redmine answered {response.status_code}")
    return body
