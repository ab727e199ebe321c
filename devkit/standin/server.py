"""The stand-in's HTTP side: a threaded server, routing (/api/METHOD, /upload/ID, /respond/NAME) and token checks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any
from urllib.parse import urlsplit

from devkit.standin.chat import ChatMethods
from devkit.standin.faults import FaultInjection
from devkit.standin.files import FileMethods
from devkit.standin.state import SlackError
from devkit.standin.wire import Reply, header, json_reply, parse_params, text_reply

UPLOAD = "upload"  # pseudo-method name of the file-body POST, for fault injection
RESPOND = "respond"  # pseudo-method name of response_url POSTs, for fault injection
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})  # called with the app-level (xapp-) token, not the bot's

Method = Callable[[dict[str, Any]], dict[str, Any]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    serving: HttpServing


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.serving._handle(self.path, dict(self.headers.items()), body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpServing(FaultInjection, ChatMethods, FileMethods):
    """Serves the Web API over HTTP; the methods table comes from the concrete stand-in (methods())."""

    _http: _Server | None = None
    _http_thread: Thread | None = None

    def methods(self) -> dict[str, Method]:
        raise NotImplementedError

    def _start_http(self) -> None:
        if self._http is None:
            self._http = _Server((self._host, self._port), _Handler)
            self._http.serving = self
            self._bound_port = int(self._http.server_address[1])
            self._http_thread = Thread(target=self._http.serve_forever, args=(0.05,), name="slack-standin", daemon=True)
            self._http_thread.start()

    def _stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            if self._http_thread is not None:
                self._http_thread.join(timeout=5)
            self._http, self._http_thread, self._bound_port = None, None, None

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(path)
        route, _, rest = parts.path.lstrip("/").partition("/")
        method = {"api": rest, "upload": UPLOAD, "respond": RESPOND}.get(route)
        with self._changed:
            try:
                if method is None or not rest:
                    return text_reply(404, "not found")
                fault = self._take_fault(method)
                if route == "api":
                    try:
                        params = parse_params(headers, body, parts.query)
                    except (ValueError, UnicodeDecodeError):
                        self._calls.append((method, {}))
                        return json_reply({"ok": False, "error": "invalid_json"})
                    token = params.pop("token", None)
                    self._calls.append((method, copy.deepcopy(params)))
                    if fault:
                        return self._fault_response(fault)
                    return json_reply(self._api(method, params, headers, token))
                if fault:
                    return self._fault_response(fault)
                if route == "upload":
                    return self._upload(rest, body)
                return self._respond(rest, headers, body)
            finally:
                self._notify()

    def _api(self, method: str, params: dict[str, Any], headers: dict[str, str], token: str | None) -> dict[str, Any]:
        auth = header(headers, "authorization")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        if not token:
            return {"ok": False, "error": "not_authed"}
        # As in Slack, each method takes one kind of token: the bot token for the Web API, the app token for Socket Mode.
        expected = self.app_token if method in APP_TOKEN_METHODS else self.bot_token
        if expected is None or token != expected:
            return {"ok": False, "error": "invalid_auth"}
        handler = self.methods().get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        try:
            return {"ok": True, **handler(params)}
        except SlackError as error:
            return {"ok": False, "error": str(error)}
