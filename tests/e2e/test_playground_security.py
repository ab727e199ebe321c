"""The playground's local server refuses what a local web server must: no secret or a wrong one, a foreign Origin (another
site the person visits), a foreign Host (DNS rebinding), a "simple" cross-site POST; it listens on 127.0.0.1 only and
sends a strict Content-Security-Policy. Then `jitbot playground` itself: SIGINT and SIGTERM stop it at once, leaving
no process (OpenBao above all) behind."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_demo_signals import alive, descendants, listening, processes_naming, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from devkit.playground.runner import Playground
    from devkit.playground.server import PlaygroundServer

    stage = Playground().start()
    served = PlaygroundServer(stage).start()
    try:
        yield served
    finally:
        served.stop()
        stage.stop()


def request(
    server: Any, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True)
        sent = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
        if body is not None:
            sent["Content-Length"] = str(len(body))
        for name, value in sent.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def origin(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


def test_every_request_needs_the_run_secret(server: Any) -> None:
    good = {"X-Playground-Secret": server.secret}
    assert request(server, "GET", f"/?s={server.secret}")[0] == 200
    assert request(server, "GET", "/api/state?as=U0DEV0001", headers=good)[0] == 200
    for path in ("/", "/static/app.js", "/api/state?as=U0DEV0001", "/api/events", "/api/file?as=U0DEV0001&id=F1"):
        status, _, body = request(server, "GET", path)
        assert status == 403, (path, status)
        assert b"secret" in body
        assert request(server, "GET", path + ("&" if "?" in path else "?") + "s=" + "x" * len(server.secret))[0] == 403
    act = json.dumps({"as": "U0DEV0001", "kind": "slash", "channel": "D0DEV0001", "text": "/elevate help"}).encode()
    headers = {"Origin": origin(server), "Content-Type": "application/json"}
    assert request(server, "POST", "/api/act", headers=headers, body=act)[0] == 403
    assert request(server, "POST", "/api/act", headers={**headers, **good}, body=act)[0] == 200


def test_foreign_origins_and_hosts_are_refused(server: Any) -> None:
    good = {"X-Playground-Secret": server.secret}
    body = json.dumps({"as": "U0DEV0001", "kind": "open_home"}).encode()
    json_type = {"Content-Type": "application/json"}
    for bad in ("https://evil.example", "null", f"http://127.0.0.1:{server.port + 1}", f"https://127.0.0.1:{server.port}"):
        status, _, _ = request(server, "POST", "/api/act", headers={**good, **json_type, "Origin": bad}, body=body)
        assert status == 403, bad
        assert request(server, "GET", f"/api/state?as=U0DEV0001&s={server.secret}", headers={"Origin": bad})[0] == 403
    # A POST with no Origin at all is not a page of ours either (browsers always send it with a POST).
    assert request(server, "POST", "/api/act", headers={**good, **json_type}, body=body)[0] == 403
    # DNS rebinding: evil.example resolving to 127.0.0.1 reaches this port with its own name as the Host.
    for host in ("evil.example", f"evil.example:{server.port}", f"127.0.0.1:{server.port + 1}", ""):
        status, _, _ = request(server, "GET", f"/?s={server.secret}", headers={"Host": host})
        assert status == 421, host
    # A form or text/plain POST needs no CORS preflight, so another site could send one: refused by its type.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        headers = {**good, "Origin": origin(server), "Content-Type": content_type}
        assert request(server, "POST", "/api/act", headers=headers, body=body)[0] == 415, content_type
    headers = {**good, **json_type, "Origin": f"http://localhost:{server.port}", "Host": f"localhost:{server.port}"}
    assert request(server, "POST", "/api/act", headers=headers, body=body)[0] == 200  # localhost is this machine too


def test_only_loopback_and_a_strict_policy(server: Any) -> None:
    assert server._http.server_address[0] == "127.0.0.1"
    for address in _other_addresses():
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex((address, server.port)) != 0, f"the playground answers on {address}"
    status, headers, page = request(server, "GET", f"/?s={server.secret}")
    assert status == 200
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers["referrer-policy"] == "no-referrer" and headers["x-content-type-options"] == "nosniff"
    assert b"<script>" not in page and not re.search(rb"\son[a-z]+=", page)  # no inline script, no inline handlers


def _other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses."""
    found = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout.split()
    return [a for a in found if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a) and not a.startswith("127.")]


URL = re.compile(r"open (http://127\.0\.0\.1:(\d+)/\?s=\S+)")


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_playground_leaves_nothing_running(signum: int, exit_code: int) -> None:
    playground = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "playground"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in playground.stdout or []], daemon=True).start()
    started: dict[Any, str] = {}
    try:
        deadline = time.monotonic() + 120
        while (match := URL.search(lines.get(timeout=max(0.1, deadline - time.monotonic())))) is None:
            assert playground.poll() is None
        port = int(match.group(2))
        assert listening(port)
        started = descendants(playground.pid)
        baos = [cmd for cmd in started.values() if "server -dev" in cmd]
        assert baos, started
        bao_port = int(re.search(r"-dev-listen-address=127\.0\.0\.1:(\d+)", baos[0]).group(1))  # type: ignore[union-attr]
        os.kill(playground.pid, signum)
        signalled = time.monotonic()
        # About 2 s here (the bot, its threads, OpenBao); 15 s was once too little on a loaded CI host, and the stage's
        # own join waits up to 30 s before it gives up on a thread.
        playground.wait(timeout=40)
        print(f"\nstopped {time.monotonic() - signalled:.2f} s after the signal")
    finally:
        if playground.poll() is None:
            playground.kill()
            playground.wait()
    try:
        assert playground.returncode == exit_code
        wait_until(lambda: not any(alive(p) for p in started), 5, f"processes the playground started still run: {started}")
        wait_until(lambda: not processes_naming(f"-dev-listen-address=127.0.0.1:{bao_port}"), 5, "its OpenBao still runs")
        wait_until(lambda: not listening(port) and not listening(bao_port), 5, "something still listens on its ports")
    finally:
        for process in started:
            if alive(process):
                os.kill(process[0], signal.SIGKILL)
    stderr = playground.stderr.read() if playground.stderr else ""
    assert f"jitbot playground: stopped by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr, stderr
