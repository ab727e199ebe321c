"""Slack request bodies shaped exactly as the project's SignedSlackClient sends them, built ahead and signed just in time."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode

from bench.core import SIGNING_SECRET
from devkit.slack_client import SignedSlackClient


class BodyRecorder(SignedSlackClient):
    """SignedSlackClient that records the form body it would POST instead of sending it."""

    def __init__(self, respond_root: str):
        super().__init__("http://127.0.0.1:9", SIGNING_SECRET)
        self.respond_root = respond_root.rstrip("/")
        self._body = ""
        self._n = 0

    def raw(self, body: str | bytes, headers: Any) -> tuple[int, Any]:
        self._body = body.decode("utf-8") if isinstance(body, bytes) else body
        return 200, None

    def _next_url(self) -> str:
        self._n += 1
        return f"{self.respond_root}/respond/bench-{self._n}"

    def slash_body(self, user: str, text: str) -> str:
        self.slash(user, text, response_url=self._next_url(), trigger_id=f"{self._n}.{1_000_000 + self._n}.bench")
        return self._body

    def click_body(self, user: str, action_id: str, request_id: str, channel: str, ts: str, message: dict[str, Any]) -> str:
        """A button click on the message at (channel, ts); `message` ({"text", "blocks"}) travels in the payload as in Slack."""
        self.click(user, action_id, request_id, message_channel=channel, message_ts=ts, response_url=self._next_url())
        payload = json.loads(parse_qs(self._body)["payload"][0])
        payload["message"] = {"type": "message", "ts": ts, "user": "U0JITBOT", "bot_id": "B0JITBOT", **message}
        return urlencode({"payload": json.dumps(payload)})

    def signed(self, body: str) -> dict[str, str]:
        """Headers for POSTing `body` now: content type and a fresh signature."""
        return {"Content-Type": "application/x-www-form-urlencoded", **self.sign(body)}
