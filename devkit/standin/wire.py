"""The stand-in's HTTP wire format: JSON replies, and request parameters from query, form or JSON bodies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

Reply = tuple[int, dict[str, str], bytes]
# Parameters that arrive as JSON text in form-encoded bodies and as objects in JSON bodies.
_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "files", "metadata", "profile"})


def json_reply(payload: dict[str, Any], status: int = 200, extra: dict[str, str] | None = None) -> Reply:
    headers = {"Content-Type": "application/json; charset=utf-8", **(extra or {})}
    return status, headers, json.dumps(payload).encode()


def text_reply(status: int, text: str, content_type: str = "text/plain") -> Reply:
    return status, {"Content-Type": content_type}, text.encode()


def parse_params(headers: dict[str, str], body: bytes, query: str) -> dict[str, Any]:
    """Query and body parameters as Slack reads them; JSON-valued form fields decoded. Raises ValueError on bad JSON."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    content_type = header(headers, "content-type")
    if body and content_type.startswith("application/json"):
        data = json.loads(body.decode("utf-8"))
        params.update(data if isinstance(data, dict) else {})
    elif body:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key in _JSON_FIELDS & params.keys():
        if isinstance(params[key], str) and params[key][:1] in ("[", "{"):
            params[key] = json.loads(params[key])
    return params


def header(headers: dict[str, str], name: str) -> str:
    """A header's value whatever its case; "" when absent."""
    return next((v for k, v in headers.items() if k.lower() == name), "")


def flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")
