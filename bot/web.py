"""The HTTP front: `POST /slack/events` to Bolt, the probes (`/livez`, `/readyz`, `/healthz`), `GET /metrics`, the step-up
page; served by waitress."""

from __future__ import annotations

import hmac
import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.bolt_body import for_bolt
from bot.gate import MAX_BODY, Admitted, Refusal, SlackGate
from bot.health import Probes

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class WebApp:
    """A tiny WSGI router; `health` returns the state of each dependency (for the probes, bot/health.py).

    Every Slack request passes the gate first (size, signature, workspace, replay); only then does Bolt see it.
    With `metrics_token`, `/metrics` wants `Authorization: Bearer <token>`; with `serve_metrics=False` it is
    not served here at all (it has its own port)."""

    def __init__(
        self,
        app: App,
        health: Callable[[], dict[str, bool]],
        info: Callable[[], dict[str, str]] = dict,
        metrics: Callable[[], bytes] = bytes,
        *,
        gate: SlackGate | None = None,
        metrics_token: str | None = None,
        serve_metrics: bool = True,
        ssh_krl: Callable[[], bytes] | None = None,
        on_received: Callable[[Admitted], None] = lambda _: None,
        stepup: Callable[[dict[str, Any], StartResponse], Iterable[bytes]] | None = None,
    ):
        self.slack = SlackRequestHandler(app)
        self.health, self.info, self.metrics = health, info, metrics
        self.probes = Probes(health, info)
        self.gate, self.metrics_token, self.serve_metrics = gate, metrics_token, serve_metrics
        self.ssh_krl, self.on_received = ssh_krl, on_received
        self.stepup = stepup  # the step-up page (bot/stepup_page.py), when a scope needs approvers to sign in

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and method == "POST":
            return self._slack(environ, start_response)
        probe = self.probes.answer(environ, start_response)
        if probe is not None:
            return probe
        if path == "/metrics" and method == "GET" and self.serve_metrics:
            return metrics_response(environ, start_response, self.metrics, self.metrics_token)
        if path.startswith("/stepup/") and self.stepup is not None:
            return self.stepup(environ, start_response)
        if path == "/ssh/revoked.krl" and method == "GET" and self.ssh_krl is not None:
            return krl_response(start_response, self.ssh_krl)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = read_body(environ)
        if body is None:
            # Slack's requests are a few KB: a bigger one is refused unread, so nobody can fill our memory.
            return _json(start_response, "413 Payload Too Large", {"error": f"bodies over {MAX_BODY} bytes are refused"})
        admitted = Admitted()
        environ.pop("HTTP_X_JITBOT_RECORDED", None)  # ours alone to set
        if self.gate is not None:
            try:
                admitted = self.gate.admit(body, _headers(environ))
            except Refusal as refusal:
                return _answer(start_response, refusal)
            except Exception:
                # The replay check needs the database: fail closed, but with an answer instead of a 500.
                log.exception("could not check a Slack request (database unreachable?)")
                return _answer(start_response, unavailable(body))
            spelled = for_bolt(
                body, str(environ.get("CONTENT_TYPE", "")), environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""), self.gate.verifier
            )
            if spelled is not None:
                body, environ = spelled[0], dict(environ, HTTP_X_SLACK_SIGNATURE=spelled[1])
        # Bolt reads exactly CONTENT_LENGTH bytes: hand it the body we already read (chunked ones included).
        environ = dict(environ, CONTENT_LENGTH=str(len(body)))
        environ["wsgi.input"] = io.BytesIO(body)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        if admitted.work is not None:
            # Its work is in the inbox: the listener only acks (naming the new request the gate made an ID for).
            made = admitted.work.kind == "request"
            environ["HTTP_X_JITBOT_RECORDED"] = str(admitted.work.args["request_id"]) if made else "1"
        status_holder: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status_holder.append(status)
            return start_response(status, headers, *args)

        result = self.slack(environ, capture)
        self.on_received(admitted)  # recorded before the ack; runs beside it
        if status_holder and status_holder[0].startswith("401"):
            # A forged or stale request: refused before anything is parsed or stored.
            log.warning("refused a Slack request with a bad or stale signature", extra={"remote": environ.get("REMOTE_ADDR")})
        return result


def unavailable(body: bytes) -> Refusal:
    """A slash command gets a 200 whose text the person sees; anything else a 503, which Slack shows as a failure."""
    if b"command=" in body and b"payload=" not in body:
        return Refusal("200 OK", {"response_type": "ephemeral", "text": UNAVAILABLE})
    return Refusal("503 Service Unavailable", {"error": "temporarily unavailable"})


UNAVAILABLE = ":warning: The bot cannot reach its database right now, so nothing was done. Please try again in a minute."


def read_body(environ: dict[str, Any], limit: int = MAX_BODY) -> bytes | None:
    """The request body, or None when it is over `limit`: a declared length is refused before reading,
    and a chunked body is read only up to one byte past the limit."""
    declared = environ.get("CONTENT_LENGTH") or ""
    if declared:
        try:
            length = int(declared) if len(declared) <= 20 else limit + 1
        except ValueError:
            length = limit + 1  # a malformed length is treated as too large, not trusted
        if length > limit:
            return None
        return bytes(environ["wsgi.input"].read(length)) if length > 0 else b""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    data = bytes(stream.read(limit + 1))
    return None if len(data) > limit else data


def metrics_response(
    environ: dict[str, Any], start_response: StartResponse, metrics: Callable[[], bytes], token: str | None
) -> list[bytes]:
    if token is not None:
        given = environ.get("HTTP_AUTHORIZATION", "")
        # compare_digest: the comparison takes as long whatever prefix of the token a guess gets right.
        if not hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {token}".encode()):
            start_response("401 Unauthorized", [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")])
            return [b'{"error": "send Authorization: Bearer <METRICS_TOKEN>"}']
    data = metrics()
    start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4"), ("Content-Length", str(len(data)))])
    return [data]


def krl_response(start_response: StartResponse, build: Callable[[], bytes]) -> list[bytes]:
    """The SSH KRL for hosts' `RevokedKeys` (public data: serials and the CA's public key, no auth needed), built from
    the shared database, so every replica serves the same list. A failure is a 503: hosts keep their last good copy."""
    try:
        data = build()
    except Exception:
        log.exception("the SSH revocation list could not be built")
        return _json(start_response, "503 Service Unavailable", {"error": "the SSH revocation list cannot be built now"})
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(data)))])
    return [data]


class MetricsApp:
    """`GET /metrics` alone, for a separate port (METRICS_PORT) that only the monitoring network reaches."""

    def __init__(self, metrics: Callable[[], bytes], token: str | None = None):
        self.metrics, self.token = metrics, token

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/metrics" and environ.get("REQUEST_METHOD", "GET") == "GET":
            return metrics_response(environ, start_response, self.metrics, self.token)
        return _json(start_response, "404 Not Found", {"error": "not found"})


class StatusApp(MetricsApp):
    """A worker's port: the probes (`/livez`, `/readyz`, `/healthz`: database, Vault, scheduler) and `GET /metrics`;
    no Slack traffic."""

    def __init__(self, probes: Probes, metrics: Callable[[], bytes], token: str | None = None) -> None:
        super().__init__(metrics, token)
        self.probes = probes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        probe = self.probes.answer(environ, start_response)
        return probe if probe is not None else super().__call__(environ, start_response)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    return {key[5:].lower().replace("_", "-"): str(value) for key, value in environ.items() if key.startswith("HTTP_")} | {
        "content-type": str(environ.get("CONTENT_TYPE", ""))
    }


def _answer(start_response: StartResponse, refusal: Refusal) -> list[bytes]:
    data = json.dumps(refusal.body).encode() if refusal.body is not None else b""
    headers = [("Content-Length", str(len(data)))] + ([("Content-Type", "application/json")] if data else [])
    start_response(refusal.status, headers)
    return [data]


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def serve(web: Any, host: str, port: int, threads: int = 16) -> Any:
    """A waitress server, not yet running: call `.run()` (blocks) or `.close()`."""
    from waitress.server import create_server

    # waitress answers 413 itself for a declared or chunked body over the limit, before buffering it
    # (it refuses at >= the setting, hence the + 1: a body of exactly MAX_BODY is allowed).
    # asyncore_use_poll: waitress' default select() loop dies on a descriptor above 1024 (a busy process
    # holding many database, Vault and Slack sockets reaches that); poll() has no such ceiling.
    return create_server(
        web,
        host=host,
        port=port,
        threads=threads,
        ident="jitbot",
        max_request_body_size=MAX_BODY + 1,
        asyncore_use_poll=True,
    )
