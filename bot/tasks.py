"""Work a listener leaves for after its ack, as plain data: run in this process's pool, or in the worker process."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Kind = Literal["click", "verb", "issue", "home", "audit_export"]


@dataclass(frozen=True)
class Task:
    """`click`: a button's body; `verb`: a slash subcommand with its response URL; `issue`: an approved request to
    issue; `home`: a Home tab to publish; `audit_export`: an auditor's export. What Slack sent (its legacy
    verification token dropped) or an ID; never kept on disk."""

    kind: Kind
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps({"task": self.kind, "args": self.args}, separators=(",", ":")).encode() + b"\n"


def click(body: dict[str, Any]) -> Task:
    # Slack's legacy verification token is a shared secret of the app: it has no business crossing to the worker.
    return Task("click", {"body": {key: value for key, value in body.items() if key != "token"}})


def verb(user: str, name: str, args: list[str], response_url: str | None) -> Task:
    return Task("verb", {"user": user, "verb": name, "args": args, "response_url": response_url})


def issue(request_id: str) -> Task:
    return Task("issue", {"request_id": request_id})


def home(user: str, refresh: bool = False) -> Task:
    """Publish `user`'s Home tab: they opened it (and are kept fresh from now on), or, with `refresh`, only if they have."""
    return Task("home", {"user": user, "refresh": refresh})


def audit_export(user: str, options: str, response_url: str | None) -> Task:
    return Task("audit_export", {"user": user, "options": options, "response_url": response_url})


def decode(message: dict[str, Any]) -> Task:
    kind = message["task"]
    if kind not in get_args(Kind):
        raise ValueError(f"unknown task {kind!r}")
    return Task(kind, dict(message.get("args") or {}))
