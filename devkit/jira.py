"""A small Jira Cloud stand-in on loopback: the REST v3 issue and comment endpoints jitbot's Jira tracker calls, over
issues held in memory, with basic auth by one email:token. `jitbot demo` closes a ticket on it; the tests check its
every request and response against Jira's own OpenAPI description (`tests/vendor_standins.py`)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

Answer = tuple[int, Any]  # HTTP status and the JSON body


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the demo's stderr is for what went wrong
        pass


class LoopbackAPI:
    """A WSGI app (`app`) served on 127.0.0.1 at a free port, in a thread, while the context is open (or start/stop)."""

    url = ""

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise NotImplementedError

    def start(self) -> LoopbackAPI:
        self._server = make_server("127.0.0.1", 0, self.app, server_class=_ThreadingWSGIServer, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class JiraIssue:
    key: str
    summary: str = ""
    status: str = "In Progress"
    category: str = "indeterminate"  # Jira's status categories: new, indeterminate, done
    assignee: str | None = None  # accountId
    comments: list[dict[str, Any]] = field(default_factory=list)  # the bodies posted, in Atlassian Document Format
    custom: dict[str, Any] = field(default_factory=dict)  # other fields by ID (e.g. a change window's customfield_…)


def adf_text(document: dict[str, Any]) -> str:
    """The plain text of an Atlassian Document Format body (the text nodes, a line per paragraph)."""

    def text(node: dict[str, Any]) -> str:
        return str(node.get("text", "")) + "".join(text(child) for child in node.get("content", []))

    return "\n".join(text(block) for block in document.get("content", []))


class JiraStandIn(LoopbackAPI):
    """Jira Cloud's `GET /rest/api/3/issue/{key}` and `POST /rest/api/3/issue/{key}/comment` over issues in memory."""

    def __init__(self, email: str = "jitbot@example.test", token: str = "jira-api-token-1") -> None:  # noqa: S107 - a test token
        self.auth = "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()
        self.issues: dict[str, JiraIssue] = {}
        self.people: dict[str, str] = {}  # accountId -> display name
        self.delay = 0.0  # seconds each answer takes (a Jira that hangs)

    def add(self, key: str, **fields: Any) -> JiraIssue:
        self.issues[key] = JiraIssue(key, **fields)
        return self.issues[key]

    def close(self, key: str) -> None:
        """Resolve the issue: status Done, in Jira's "done" category."""
        self.issues[key].status, self.issues[key].category = "Done", "done"

    def check_schema(self, name: str, value: Any) -> None:
        """A value Jira's description leaves free-form, named by the schema it should meet (the tests check it)."""

    def respond(self, method: str, path: str, authorization: str | None, body: Any) -> Answer:
        """Jira's answer to one call."""
        time.sleep(self.delay)
        if authorization != self.auth:
            return 401, {"errorMessages": ["You are not authenticated."], "errors": {}}
        parts = path.strip("/").split("/")  # rest api 3 issue KEY [comment]
        issue = self.issues.get(parts[4]) if len(parts) >= 5 and parts[:4] == ["rest", "api", "3", "issue"] else None
        if issue is None:
            return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}
        base = f"{self.url}/rest/api/3"
        if method == "POST" and parts[5:] == ["comment"]:
            issue.comments.append(body["body"])
            made = {"id": str(10000 + len(issue.comments)), "self": f"{base}/issue/{issue.key}/comment/1", "body": body["body"],
                    "created": datetime.now(UTC).isoformat()}  # fmt: skip
            return 201, made
        status = {"self": f"{base}/status/3", "id": "3", "name": issue.status, "description": "",
                  "statusCategory": {"self": f"{base}/statuscategory/{issue.category}", "id": 4, "key": issue.category,
                                     "colorName": "yellow", "name": issue.category.title()}}  # fmt: skip
        fields: dict[str, Any] = {"status": status, "assignee": None, **issue.custom}
        if issue.assignee is not None:
            fields["assignee"] = {"self": f"{base}/user?accountId={issue.assignee}", "accountId": issue.assignee,
                                  "displayName": self.people.get(issue.assignee, issue.assignee), "active": True,
                                  "accountType": "atlassian", "timeZone": "UTC"}  # fmt: skip
            self.check_schema("UserDetails", fields["assignee"])
        self.check_schema("StatusDetails", status)
        return 200, {"id": str(10000 + list(self.issues).index(issue.key)), "key": issue.key, "self": f"{base}/issue/{issue.key}",
                     "fields": fields, "expand": "renderedFields"}  # fmt: skip

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(size) if size else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if method == "POST" and not isinstance(body, dict):
            status, answer = 400, {"errorMessages": ["A JSON body is required."], "errors": {}}
        else:
            status, answer = self.respond(method, path, environ.get("HTTP_AUTHORIZATION"), body)
        data = json.dumps(answer).encode()
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(status, "")
        start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
