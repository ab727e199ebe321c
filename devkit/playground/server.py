"""The playground's local web server: the page, its JSON API, server-sent events; 127.0.0.1 only, behind a per-run secret."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devkit.playground.actions import BadAction, perform
from devkit.playground.runner import Playground
from devkit.playground.session import Session
from devkit.playground.surfaces import PERSONAS, file_for, state_for
from grants.audit import AuditQuery

log = logging.getLogger(__name__)
STATIC = {"app.js": "text/javascript", "blockkit.js": "text/javascript", "style.css": "text/css"}
MAX_BODY = 64 * 1024
SECRET_HEADER = "X-Playground-Secret"  # noqa: S105 - the header's name, not a secret
# Nothing but this origin's own files: no inline script or style, no frames, no other hosts, no forms posting away.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SAFE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the URL holds the secret
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Refused(Exception):
    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    playground: PlaygroundServer


class PlaygroundServer:
    """Serves the page for `playground` on 127.0.0.1:`port` (0: a free one)."""

    def __init__(self, playground: Playground, port: int = 0):
        self.playground = playground
        self.secret = secrets.token_urlsafe(24)
        self.stopping = threading.Event()
        self._http = _Server(("127.0.0.1", port), _Handler)  # loopback only: nothing else on the network reaches it
        self._http.playground = self
        self.port = int(self._http.server_address[1])
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.1,), name="playground-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?s={self.secret}"

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})

    def start(self) -> PlaygroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def session(self) -> Session:
        session = self.playground.session
        if session is None:
            raise Refused(503, "the playground is resetting: try again in a moment")
        return session


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    @property
    def pg(self) -> PlaygroundServer:
        return self.server.playground

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ------------------------------------------------------------------ the checks every request passes

    def _check(self, post: bool) -> dict[str, list[str]]:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        # DNS rebinding: a page of evil.example resolved to 127.0.0.1 arrives with its own Host header.
        if self.headers.get("Host", "") not in self.pg.hosts:
            raise Refused(421, "wrong Host: open the URL jitbot playground printed")
        origin = self.headers.get("Origin")
        allowed = {f"http://{host}" for host in self.pg.hosts}
        # Cross-site requests: another page the person visits may send requests here, but never with our Origin.
        if (origin is not None or post) and origin not in allowed:
            raise Refused(403, "wrong or missing Origin")
        given = self.headers.get(SECRET_HEADER) or (query.get("s") or [""])[0]
        if not hmac.compare_digest(given.encode(), self.pg.secret.encode()):
            raise Refused(403, "missing or wrong secret: open the URL jitbot playground printed (with its ?s=…)")
        if post and self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            # A "simple" cross-site POST (text/plain, a form) cannot set this type without a CORS preflight we never answer.
            raise Refused(415, "send application/json")
        return query

    def _reply(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {**SAFE_HEADERS, "Content-Type": content_type, **(extra or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._reply(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _refuse(self, refused: Refused) -> None:
        log.warning("playground refused %s %s: %s", self.command, urlsplit(self.path).path, refused)
        self._json(refused.status, {"error": str(refused)})

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:
        try:
            query = self._check(post=False)
            path = urlsplit(self.path).path
            if path == "/":
                page = files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
                self._reply(200, page.replace("%SECRET%", self.pg.secret).encode(), "text/html; charset=utf-8")
            elif path.startswith("/static/") and path[8:] in STATIC:
                asset = files(__package__).joinpath("static", path[8:]).read_bytes()
                self._reply(200, asset, STATIC[path[8:]] + "; charset=utf-8")
            elif path == "/api/state":
                self._json(200, state_for(self.pg.session(), _persona(query)))
            elif path == "/api/file":
                found = file_for(self.pg.session(), _persona(query), (query.get("id") or [""])[0])
                if found is None:
                    raise Refused(404, "no such file where you can see it")
                self._json(200, {"name": found[0], "text": found[1].decode("utf-8", errors="replace")})
            elif path == "/api/events":
                self._events()
            else:
                raise Refused(404, "not found")
        except Refused as refused:
            self._refuse(refused)

    def do_POST(self) -> None:
        try:
            self._check(post=True)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise Refused(413, f"at most {MAX_BODY} bytes")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                raise Refused(400, "the body is not JSON") from None
            if not isinstance(body, dict):
                raise Refused(400, "the body is not a JSON object")
            self._json(200, self._post(urlsplit(self.path).path, body))
        except Refused as refused:
            self._refuse(refused)
        except (BadAction, LookupError, PermissionError) as error:
            self._json(400, {"error": str(error)})

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        if path == "/api/reset":
            session = self.pg.playground.reset()
            return {"generation": session.generation}
        session = self.pg.session()
        if path == "/api/verify":
            return session.verify()
        user = _persona({"as": [str(body.get("as") or "")]})
        if path == "/api/act":
            return perform(session, user, body)
        if path == "/api/unwrap":
            credential, token = session.unwrap(user, str(body.get("channel") or ""), str(body.get("ts") or ""))
            return {"credential": credential.shown(), "token": token}  # the one time the token leaves the server
        if path == "/api/try":
            return session.try_credential(user, str(body.get("credential") or ""), str(body.get("what") or ""))
        raise Refused(404, "not found")

    def _events(self) -> None:
        """Server-sent events: `changed` whenever the bot told Slack something, the trail grew or the stage was reset."""
        self.send_response(200)
        for name, value in {**SAFE_HEADERS, "Content-Type": "text/event-stream"}.items():
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True
        seen: tuple[int, ...] | None = None
        standin_seen, audit_seen, idle = -1, 0, 0
        try:
            while not self.pg.stopping.is_set():
                session = self.pg.playground.session
                if session is None:
                    signature: tuple[int, ...] = (-1,)
                    self.pg.stopping.wait(0.2)
                else:
                    standin_seen = session.stage.standin.wait_changed(standin_seen, timeout=0.5)
                    audit_seen = _audit_head(session, audit_seen)
                    signature = (session.generation, standin_seen, session.version, audit_seen)
                if signature != seen:
                    seen, idle = signature, 0
                    self.wfile.write(f"event: changed\ndata: {json.dumps(signature)}\n\n".encode())
                elif (idle := idle + 1) % 30 == 0:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return


def _audit_head(session: Session, seen: int) -> int:
    runtime = session.stage.bot.runtime
    if runtime is None:
        return seen
    for event in runtime.store.events(AuditQuery(from_seq=seen + 1)):
        seen = max(seen, event.seq or 0)
    return seen


def _persona(query: dict[str, list[str]]) -> str:
    user = (query.get("as") or [""])[0]
    if user not in PERSONAS:
        raise Refused(400, f"`as` must be one of the page's people: {', '.join(sorted(PERSONAS))}")
    return user
