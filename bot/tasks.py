"""Work a listener leaves for after its ack, as plain data: run in this process's pool, or in the worker process."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["click", "verb", "issue", "home"]


@dataclass(frozen=True)
class Task:
    """`click`: a button's body; `verb`: a slash subcommand with its response URL; `issue`: an approved request to
    issue; `home`: a Home tab to publish. Only what Slack sent or an ID: never a secret, never kept on disk."""

    kind: Kind
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps({"task": self.kind, "args": self.args}, separators=(",", ":")).encode() + b"\n"


def click(body: dict[str, Any]) -> Task:
    return Task("click", {"body": body})


def verb(user: str, name: str, args: list[str], response_url: str | None) -> Task:
    return Task("verb", {"user": user, "verb": name, "args": args, "response_url": response_url})


def issue(request_id: str) -> Task:
    return Task("issue", {"request_id": request_id})


def home(user: str) -> Task:
    return Task("home", {"user": user})


def decode(message: dict[str, Any]) -> Task:
    kind = message["task"]
    if kind not in ("click", "verb", "issue", "home"):
        raise ValueError(f"unknown task {kind!r}")
    return Task(kind, dict(message.get("args") or {}))
