"""`/livez`, `/readyz`, `/healthz` of a real `jitbot serve`: liveness never follows Vault or Slack, readiness does."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from devkit.harness import free_port
from devkit.processes import ServeProcess
from tests.conftest import process_env
from tests.tcp_proxy import FreezableProxy


@pytest.fixture
def env(tmp_path, openbao, bot_vault_token) -> Iterator[dict[str, str]]:
    with process_env(tmp_path, openbao.addr, bot_vault_token) as (_, env):
        yield env


def probe(bot: ServeProcess, path: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(f"{bot.url}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def until(bot: ServeProcess, path: str, status: int, timeout: float = 15) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        got, body = probe(bot, path)
        if got == status or time.monotonic() > deadline:
            assert got == status, (path, got, body)
            return dict(json.loads(body))
        time.sleep(0.2)


def test_a_vault_outage_makes_the_bot_unready_but_not_dead(env, openbao, tmp_path):
    proxy = FreezableProxy(("127.0.0.1", openbao.port))
    bot = ServeProcess({**env, "VAULT_ADDR": f"http://127.0.0.1:{proxy.port}"}, tmp_path / "serve.log").start()
    try:
        ready = until(bot, "/readyz", 200)
        assert ready == {"database": "ok", "vault": "ok", "scheduler": "ok", "slack": "ok", "anchor": "ok", "status": "ok"}, ready
        assert until(bot, "/healthz", 200) == {
            "database": "ok",
            "vault": "ok",
            "scheduler": "ok",
            "anchor": "ok",
            "role": "serve",
        }
        assert probe(bot, "/livez") == (200, b'{"status": "ok"}')
        for path in ("/livez", "/readyz", "/healthz"):
            assert probe(bot, path, "HEAD") == (200, b""), path
        proxy.cut()
        unready = until(bot, "/readyz", 503)
        assert unready["vault"] == "down" and unready["database"] == "ok" and unready["status"] == "unavailable", unready
        assert probe(bot, "/readyz", "HEAD") == (503, b"")
        assert until(bot, "/healthz", 503)["vault"] == "down"  # /healthz keeps its contract: 503 when one is down
        # A liveness probe restarting the bot would not bring Vault back: /livez stays 200.
        assert probe(bot, "/livez") == (200, b'{"status": "ok"}') and probe(bot, "/livez", "HEAD") == (200, b"")
        assert probe(bot, "/readyz", "POST")[0] == 404
    finally:
        bot.stop()
        proxy.close()


def test_slack_unreachable_at_start_serves_unready_and_log_level_is_honoured(env, tmp_path):
    api = f"http://127.0.0.1:{free_port()}/api/"
    log = tmp_path / "serve.log"
    bot = ServeProcess({**env, "SLACK_API_URL": api, "SLACK_TEAM_ID": "", "LOG_LEVEL": "warning"}, log).start()
    try:
        assert until(bot, "/healthz", 200)["vault"] == "ok"  # what /healthz always named is fine
        unready = until(bot, "/readyz", 503)
        assert unready["slack"] == "down" and unready["vault"] == "ok", unready  # commands would get 503 now
        assert probe(bot, "/livez")[0] == 200
    finally:
        bot.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(f"cannot reach Slack at {api}" in line["message"] for line in lines), lines
    assert lines and all(line["level"] != "info" for line in lines), "LOG_LEVEL=warning leaves the info lines out"
