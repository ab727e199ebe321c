"""The HTTP front: `POST /slack/events` to Bolt, `GET /healthz`, `GET /metrics`; served by waitress."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class WebApp:
    """A tiny WSGI router; `health` returns the state of each dependency."""

    def __init__(
        self,
        app: App,
        health: Callable[[], dict[str, bool]],
        info: Callable[[], dict[str, str]] = dict,
        metrics: Callable[[], bytes] = bytes,
    ):
        self.slack = SlackRequestHandler(app)
        self.health, self.info, self.metrics = health, info, metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and method == "POST":
            return self._slack(environ, start_response)
        if path == "/healthz" and method == "GET":
            state = self.health()
            body = {name: ("ok" if up else "down") for name, up in state.items()} | self.info()
            return _json(start_response, "200 OK" if all(state.values()) else "503 Service Unavailable", body)
        if path == "/metrics" and method == "GET":
            data = self.metrics()
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4"), ("Content-Length", str(len(data)))])
            return [data]
        return _json(start_response, "404 Not Found", {"error": "not found"})

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status_holder: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status_holder.append(status)
            return start_response(status, headers, *args)

        result = self.slack(environ, capture)
        if status_holder and status_holder[0].startswith("401"):
            # A forged or replayed request: refused before anything is parsed or stored.
            log.warning("refused a Slack request with a bad or stale signature", extra={"remote": environ.get("REMOTE_ADDR")})
        return result  # type: ignore[no-any-return]


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def serve(web: WebApp, host: str, port: int, threads: int = 16) -> Any:
    """A waitress server, not yet running: call `.run()` (blocks) or `.close()`."""
    from waitress.server import create_server

    return create_server(web, host=host, port=port, threads=threads, ident="jitbot")
