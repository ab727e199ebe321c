"""Stateful stand-ins of Jira and PagerDuty whose every request and response is checked against the vendor's own
OpenAPI description (`tests/vendor/`, subsets with their sources named) by openapi-core."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_schema_validator import OAS30Validator
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

VENDOR = Path(__file__).resolve().parent / "vendor"


class _AsVendorHost(WerkzeugOpenAPIRequest):
    """The request as the vendor's server would see it: its host is the one the description names."""

    def __init__(self, request: Request, host_url: str):
        super().__init__(request)
        self._host_url = host_url

    @property
    def host_url(self) -> str:
        return self._host_url


class SchemaCheckedStandIn:
    """A vendor's API on loopback. A request the description refuses is answered 400 and recorded in `violations`; a
    response it refuses is recorded there too. A test ends with `assert standin.violations == []`."""

    spec_file: str

    def __init__(self) -> None:
        self.spec = json.loads((VENDOR / self.spec_file).read_text(encoding="utf-8"))
        self.openapi = OpenAPI.from_dict(self.spec)
        self.host_url = self.spec["servers"][0]["url"]
        self.violations: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.down = False  # answer 503 (the vendor is having a bad day)

    def __enter__(self) -> SchemaCheckedStandIn:
        self.server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        checked = _AsVendorHost(request, self.host_url)
        self.calls.append((request.method, request.full_path.rstrip("?")))
        try:
            self.openapi.validate_request(checked)
        except Exception as exc:  # every kind of refusal is a finding: record it and answer like the vendor would
            self.violations.append(f"request {request.method} {request.path}: {exc!r} {getattr(exc, '__cause__', '')!r}")
            response = Response(json.dumps({"error": str(exc)}), 400, content_type="application/json")
        else:
            response = Response("", 503) if self.down else self.handle(request)
        if not self.down:
            try:
                self.openapi.validate_response(checked, WerkzeugOpenAPIResponse(response))
            except Exception as exc:
                self.violations.append(
                    f"response {request.method} {request.path} {response.status_code}: {exc!r} {exc.__cause__!r}"
                )
        return response(environ, start_response)  # type: ignore[no-any-return]

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def check_schema(self, name: str, value: Any) -> None:
        """Check a value the description leaves free-form (Jira's `fields`) against a named schema of the same description."""
        schema = {"$ref": f"#/components/schemas/{name}", "components": self.spec["components"]}
        errors = [e.message for e in OAS30Validator(schema).iter_errors(value)]
        self.violations += [f"{name}: {e}" for e in errors]


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type="application/json")


@dataclass
class JiraIssue:
    key: str
    status: str = "In Progress"
    category: str = "indeterminate"  # Jira's status categories: new, indeterminate, done
    assignee: str | None = None  # accountId
    comments: list[dict[str, Any]] = field(default_factory=list)


class JiraStandIn(SchemaCheckedStandIn):
    """Jira Cloud's issue and comment endpoints over issues held in memory; basic auth with one email:token."""

    spec_file = "jira-platform-v3.json"

    def __init__(self, email: str = "jitbot@example.test", token: str = "jira-api-token-1") -> None:  # noqa: S107 - a test token
        super().__init__()
        import base64

        self.auth = "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()
        self.issues: dict[str, JiraIssue] = {}
        self.people: dict[str, str] = {}  # accountId -> display name

    def add(self, key: str, **fields: Any) -> JiraIssue:
        self.issues[key] = JiraIssue(key, **fields)
        return self.issues[key]

    def close(self, key: str) -> None:
        self.issues[key].status, self.issues[key].category = "Done", "done"

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != self.auth:
            return _json({"errorMessages": ["You are not authenticated."], "errors": {}}, 401)
        parts = request.path.strip("/").split("/")  # rest api 3 issue KEY [comment]
        issue = self.issues.get(parts[4]) if len(parts) >= 5 else None
        if issue is None:
            return _json({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}, 404)
        if request.method == "POST" and parts[5:] == ["comment"]:
            body = request.get_json()
            issue.comments.append(body["body"])
            made = {"id": str(10000 + len(issue.comments)), "self": f"{self.url}/rest/api/3/issue/{issue.key}/comment/1", "body": body["body"],
                    "created": datetime.now(UTC).isoformat()}  # fmt: skip
            return _json(made, 201)
        base = f"{self.url}/rest/api/3"
        status = {"self": f"{base}/status/3", "id": "3", "name": issue.status, "description": "",
                  "statusCategory": {"self": f"{base}/statuscategory/{issue.category}", "id": 4, "key": issue.category,
                                     "colorName": "yellow", "name": issue.category.title()}}  # fmt: skip
        fields: dict[str, Any] = {"status": status, "assignee": None}
        if issue.assignee is not None:
            fields["assignee"] = {"self": f"{base}/user?accountId={issue.assignee}", "accountId": issue.assignee,
                                  "displayName": self.people.get(issue.assignee, issue.assignee), "active": True,
                                  "accountType": "atlassian", "timeZone": "UTC"}  # fmt: skip
            self.check_schema("UserDetails", fields["assignee"])
        self.check_schema("StatusDetails", status)
        return _json({"id": str(10000 + list(self.issues).index(issue.key)), "key": issue.key, "self": f"{base}/issue/{issue.key}",
                      "fields": fields, "expand": "renderedFields"})  # fmt: skip


@dataclass
class OnCallEntry:
    user: str  # PagerDuty user ID
    name: str
    schedule: str
    level: int
    start: datetime
    end: datetime | None


class PagerDutyStandIn(SchemaCheckedStandIn):
    """PagerDuty's `GET /oncalls` over shifts held in memory: the entries that hold at `now()` for the schedules asked."""

    spec_file = "pagerduty-rest-v3.json"

    def __init__(self, token: str = "pd-token-1", now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # noqa: S107
        super().__init__()
        self.token, self.now = token, now
        self.entries: list[OnCallEntry] = []

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Token token={self.token}":
            return _json({"error": {"message": "Unauthorized", "code": 2006}}, 401)
        schedules = set(request.args.getlist("schedule_ids[]"))
        now = self.now()
        web = "https://example.pagerduty.com"
        found = [
            {
                "user": {"id": e.user, "type": "user_reference", "summary": e.name, "self": f"{self.host_url}/users/{e.user}", "html_url": f"{web}/users/{e.user}"},
                "schedule": {"id": e.schedule, "type": "schedule_reference", "summary": "Payments primary",
                             "self": f"{self.host_url}/schedules/{e.schedule}", "html_url": f"{web}/schedules/{e.schedule}"},
                "escalation_policy": {"id": "PEP0001", "type": "escalation_policy_reference", "summary": "Payments",
                                      "self": f"{self.host_url}/escalation_policies/PEP0001", "html_url": f"{web}/escalation_policies/PEP0001"},
                "escalation_level": e.level,
                "start": e.start.isoformat(),
                # The description says a permanent on-call has `end: null`, but its schema allows no null: left out.
                **({"end": e.end.isoformat()} if e.end else {}),
            }
            for e in self.entries
            if (not schedules or e.schedule in schedules) and e.start <= now and (e.end is None or now < e.end)
        ]  # fmt: skip
        return _json({"oncalls": found, "limit": 100, "offset": 0, "more": False, "total": None})
