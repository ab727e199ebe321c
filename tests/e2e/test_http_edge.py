"""The HTTP edge under unauthenticated load: oversized bodies refused unread, a /healthz that answers
whatever Vault does, and /metrics behind a token or on its own port."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bot.web import MetricsApp, serve
from devkit.harness import free_port
from tests.conftest import World, local_bot

MiB = 1024 * 1024


def rss_kib() -> int:
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def post_declared(url: str, headers: dict[str, str], send: int = 64 * 1024, timeout: float = 5) -> tuple[int, float]:
    """Declare a body by `headers`, send only `send` bytes of it, and read the status line: (status, seconds)."""
    host, port = url.split("//")[1].split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
        try:
            sock.sendall(b"x" * send)
        except OSError:
            pass  # the server may have answered and closed already
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1]), time.monotonic() - started


def test_a_300_mb_declared_body_gets_413_at_once_and_memory_does_not_grow(world: World):
    before = rss_kib()
    status, seconds = post_declared(
        world.bot.url, {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(300 * MiB)}
    )
    assert status == 413 and seconds < 1.0, (status, seconds)
    # Four at once, as in the report that took the bot to 2.3 GB.
    results: list[tuple[int, float]] = []
    threads = [
        threading.Thread(target=lambda: results.append(post_declared(world.bot.url, {"Content-Length": str(200 * MiB)})))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [r[0] for r in results] == [413] * 4, results
    assert rss_kib() - before < 20 * 1024, f"RSS grew by {rss_kib() - before} KiB"
    # The bot still serves Slack.
    status, body = world.client.slash("U0DEV0001", "help")
    assert status == 200 and "help" in str(body).lower()


def test_a_chunked_body_over_the_limit_gets_413(world: World):
    host, port = world.bot.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"y" * (256 * 1024)
        try:
            for _ in range(8):  # 2 MiB in chunks, no declared length
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass
        status_line = sock.makefile("rb").readline().decode()
    assert status_line.split()[1] == "413", status_line


def test_the_app_itself_refuses_big_bodies_behind_any_server():
    """Defence in depth for servers other than waitress: the WSGI app checks the declared length and caps
    a chunked read one byte past the limit."""
    from io import BytesIO

    from bot.web import read_body

    class Endless:
        def __init__(self) -> None:
            self.read_sizes: list[int] = []

        def read(self, size: int = -1) -> bytes:
            assert size >= 0, "an unbounded read"
            self.read_sizes.append(size)
            return b"z" * size

    endless = Endless()
    assert read_body({"CONTENT_LENGTH": str(300 * MiB), "wsgi.input": endless}) is None and endless.read_sizes == []
    assert read_body({"wsgi.input": endless}) is None and endless.read_sizes == [MiB + 1]
    assert read_body({"CONTENT_LENGTH": "9" * 5000, "wsgi.input": endless}) is None
    assert read_body({"CONTENT_LENGTH": "abc", "wsgi.input": endless}) is None
    assert read_body({"CONTENT_LENGTH": "5", "wsgi.input": BytesIO(b"hello")}) == b"hello"


@pytest.fixture
def hanging_vault() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: Vault at its worst."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    server.close()


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_healthz_answers_within_a_second_when_vault_hangs(tmp_path, hanging_vault: str):
    import json

    with local_bot(tmp_path, hanging_vault, "s.hanging-vault-test-token") as world:
        bot = world.bot
        timings = []
        for _ in range(3):  # the first probe waits out the time box; the next ones reuse or re-run it
            started = time.monotonic()
            status, body = get(f"{bot.url}/healthz")
            timings.append(time.monotonic() - started)
            assert status == 503, body
            state = json.loads(body)
            assert state["vault"] == "down" and state["database"] == "ok", state
        assert max(timings) < 1.0, timings
        # Concurrent probes while the Vault check hangs: none waits past the time box.
        concurrent: list[float] = []

        def probe() -> None:
            started = time.monotonic()
            get(f"{bot.url}/healthz")
            concurrent.append(time.monotonic() - started)

        time.sleep(2.1)  # past the cache
        threads = [threading.Thread(target=probe) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(concurrent) == 8 and max(concurrent) < 1.0, concurrent


def test_cached_health_counts_a_slow_check_as_down_and_never_stacks_it():
    from bot.health import CachedHealth

    release, calls = threading.Event(), []

    def slow() -> bool:
        calls.append(1)
        release.wait(10)
        return True

    health = CachedHealth({"fast": lambda: True, "slow": slow, "broken": lambda: 1 / 0 == 0}, ttl=0.0, timeout=0.2)
    for _ in range(3):
        started = time.monotonic()
        assert health() == {"fast": True, "slow": False, "broken": False}
        assert time.monotonic() - started < 0.5
    assert len(calls) == 1, "a hung check was started again while still running"
    release.set()
    time.sleep(0.1)
    assert health()["slow"] is True


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    return {}


def test_metrics_behind_a_bearer_token(tmp_path, openbao, bot_vault_token):
    secret = "metrics-token-1f3a9c0e77d2"
    with local_bot(tmp_path, openbao.addr, bot_vault_token, metrics_token=secret) as world:
        bot = world.bot
        status, body = get(f"{bot.url}/metrics")
        assert status == 401 and b"jitbot_" not in body
        status, body = get(f"{bot.url}/metrics", {"Authorization": "Bearer wrong-token-wrong-token"})
        assert status == 401 and b"jitbot_" not in body
        status, body = get(f"{bot.url}/metrics", {"Authorization": f"Bearer {secret}"})
        assert status == 200 and b"jitbot_audit_events" in body


def test_metrics_on_their_own_port_only(tmp_path, openbao, bot_vault_token):
    port = free_port()
    with local_bot(tmp_path, openbao.addr, bot_vault_token, metrics_port=port) as world:
        bot = world.bot
        assert get(f"{bot.url}/metrics")[0] == 404  # not on the Slack-facing port
        assert bot.runtime is not None
        server = serve(MetricsApp(bot.runtime.web.metrics), "127.0.0.1", port, threads=1)  # as `jitbot serve` does
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            status, body = get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200 and b"jitbot_audit_events" in body
            assert get(f"http://127.0.0.1:{port}/slack/events")[0] == 404
        finally:
            server.close()
