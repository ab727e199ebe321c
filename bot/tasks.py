"""Work a listener leaves for after its ack, as plain data: run in this process's pool, or from its inbox row by a worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Kind = Literal["click", "verb", "request", "issue", "home", "audit_export"]


@dataclass(frozen=True)
class Task:
    """`click`: a button's body; `verb`: a slash subcommand with its response URL; `request`: a new request under the
    ID its ack named (`bot/listeners/asking.py`); `issue`: an approved request to
    issue; `home`: a Home tab to publish; `audit_export`: an auditor's export. What Slack sent (its legacy
    verification token dropped) or an ID; never kept on disk."""

    kind: Kind
    args: dict[str, Any] = field(default_factory=dict)


def click(body: dict[str, Any]) -> Task:
    # Slack's legacy verification token is a shared secret of the app: it has no business crossing to the worker.
    return Task("click", {"body": {key: value for key, value in body.items() if key != "token"}})


def verb(user: str, name: str, args: list[str], response_url: str | None) -> Task:
    return Task("verb", {"user": user, "verb": name, "args": args, "response_url": response_url})


def new_request(
    request_id: str,
    user: str,
    scope: str,
    duration: str | None,
    reason: str,
    service: str | None,
    response_url: str | None,
    *,
    start: str | None = None,
    public_key: str | None = None,
    csr: str | None = None,
) -> Task:
    """What a new request asks for, as typed (a public key and a CSR are not secret; a private key never gets here)."""
    args = {"request_id": request_id, "user": user, "scope": scope, "duration": duration, "reason": reason}
    extra = {"service": service, "response_url": response_url, "start": start, "public_key": public_key, "csr": csr}
    return Task("request", args | {key: value for key, value in extra.items() if value})


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
