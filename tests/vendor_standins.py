"""Stateful stand-ins of Jira and PagerDuty whose every request and response is checked against the vendor's own
OpenAPI description (`tests/vendor/`, subsets with their sources named) by openapi-core."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_schema_validator import OAS30Validator
from werkzeug.wrappers import Request, Response

from devkit import jira as devkit_jira
from devkit.jira import LoopbackAPI

VENDOR = Path(__file__).resolve().parent / "vendor"


class _AsVendorHost(WerkzeugOpenAPIRequest):
    """The request as the vendor's server would see it: its host is the one the description names."""

    def __init__(self, request: Request, host_url: str):
        super().__init__(request)
        self._host_url = host_url

    @property
    def host_url(self) -> str:
        return self._host_url


class SchemaCheckedStandIn(LoopbackAPI):
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

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
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


class JiraStandIn(SchemaCheckedStandIn, devkit_jira.JiraStandIn):
    """The dev kit's Jira stand-in (`devkit/jira.py`, the one `jitbot demo` uses), every call checked against Jira's
    own description."""

    spec_file = "jira-platform-v3.json"

    def __init__(self, email: str = "jitbot@example.test", token: str = "jira-api-token-1") -> None:  # noqa: S107 - a test token
        devkit_jira.JiraStandIn.__init__(self, email, token)
        SchemaCheckedStandIn.__init__(self)

    def handle(self, request: Request) -> Response:
        status, body = self.respond(
            request.method, request.path, request.headers.get("Authorization"), request.get_json(silent=True)
        )
        return _json(body, status)


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
