"""The probes of bot/health.py as any process serves them: liveness, readiness over the given checks, /healthz."""

from __future__ import annotations

import json
from typing import Any

from bot.health import Probes


def call(app: Any, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    seen: list[Any] = []
    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": method}, lambda status, headers: seen.extend([status, headers])))
    return seen[0], dict(seen[1]), body


def test_readiness_follows_every_check_and_liveness_none():
    state = {"database": True, "vault": True, "scheduler": True, "claims": True}
    probes = Probes(lambda: state, lambda: {"role": "worker"})
    status, headers, body = call(probes, "/readyz")
    assert status == "200 OK" and json.loads(body) == {**dict.fromkeys(state, "ok"), "status": "ok"}
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    state["claims"] = False
    status, _, body = call(probes, "/readyz")
    assert status.startswith("503") and json.loads(body)["claims"] == "down"
    assert call(probes, "/livez")[0] == "200 OK"
    # /healthz names what it always named (a worker's own check is /readyz's), with the role.
    status, _, body = call(probes, "/healthz")
    assert status == "200 OK" and json.loads(body) == {"database": "ok", "vault": "ok", "scheduler": "ok", "role": "worker"}


def test_head_answers_the_same_status_and_headers_without_a_body():
    probes = Probes(lambda: {"database": False})
    for path, status in (("/livez", "200 OK"), ("/readyz", "503 Service Unavailable"), ("/healthz", "503 Service Unavailable")):
        got, headers, body = call(probes, path, "HEAD")
        assert (got, body) == (status, b"") and int(headers["Content-Length"]) > 0, path


def test_anything_else_is_not_a_probe():
    probes = Probes(dict)
    assert probes.answer({"PATH_INFO": "/readyz", "REQUEST_METHOD": "POST"}, lambda *_: None) is None
    assert call(probes, "/metrics")[0] == "404 Not Found"
