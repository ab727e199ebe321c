"""Jira Cloud's REST API v3 as a `Tracker`: an issue's status category and assignee, and comments added to it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from grants.tickets import Ticket, TrackerUnavailable


class JiraTracker:
    """Issues by key (`PROJ-123`). The token is `email:api-token` (Jira Cloud, basic auth) or a personal access token."""

    def __init__(self, url: str, token: str, timeout: float = 5.0, window_fields: tuple[str, str] | None = None):
        self.url, self.timeout, self.window_fields = url.rstrip("/"), timeout, window_fields
        self.session = requests.Session()
        if ":" in token:
            auth = "Basic " + base64.b64encode(token.encode()).decode()
        else:
            auth = f"Bearer {token}"
        self.session.headers.update({"Authorization": auth, "Accept": "application/json"})

    def ticket(self, key: str) -> Ticket | None:
        asked = ["status", "assignee", *(self.window_fields or ())]
        response = self._call("GET", f"/rest/api/3/issue/{key}", params={"fields": ",".join(asked)})
        if response.status_code == 404:
            return None
        body = _json(response, 200)
        fields = body.get("fields")
        status = fields.get("status") if isinstance(fields, dict) else None
        if not isinstance(status, dict) or not isinstance(status.get("statusCategory"), dict):
            raise TrackerUnavailable("Jira answered without the issue's status")
        assignee = fields.get("assignee") or {}  # type: ignore[union-attr]  # fields is a dict: status came from it
        start = end = None
        if self.window_fields:
            start_field, end_field = self.window_fields
            start, end = _moment(fields, start_field), _moment(fields, end_field, end=True)  # type: ignore[arg-type]
        return Ticket(
            key=str(body.get("key", key)),
            state=str(status.get("name", "")),
            # Jira's own notion of finished: every workflow's closed and resolved statuses are in the "done" category.
            open=status["statusCategory"].get("key") != "done",
            assignee=assignee.get("accountId"),
            assignee_name=assignee.get("displayName"),
            url=f"{self.url}/browse/{body.get('key', key)}",
            window_start=start,
            window_end=end,
        )

    def comment(self, key: str, text: str) -> None:
        document = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}
        _json(self._call("POST", f"/rest/api/3/issue/{key}/comment", json={"body": document}), 201)

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise TrackerUnavailable(f"Jira did not answer ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise TrackerUnavailable(f"Jira refused the bot's token ({response.status_code})")
        if response.status_code >= 500 or response.status_code == 429:
            raise TrackerUnavailable(f"Jira answered {response.status_code}")
        return response


def _moment(fields: dict[str, Any], field: str, end: bool = False) -> datetime | None:
    """A Jira date-time field (`2026-12-08T22:00:00.000+0000`), or a date field (`2026-12-08`: the day's first moment
    in UTC, or for the window's end the day's last, as with Redmine's due date)."""
    value = fields.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TrackerUnavailable(f"Jira's field {field} is not a date or date-time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TrackerUnavailable(f"Jira's field {field} is not a date or date-time") from None
    if "T" not in value:
        return moment.replace(tzinfo=UTC) + (timedelta(days=1) if end else timedelta(0))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json(response: requests.Response, expected: int) -> dict[str, Any]:
    if response.status_code != expected:
        raise TrackerUnavailable(f"Jira answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise TrackerUnavailable("Jira answered without JSON") from None
    if not isinstance(body, dict):
        raise TrackerUnavailable("Jira answered something other than an object")
    return body
