"""`jitbot serve` on a bad start: one line naming the problem and what to do, exit 2, no traceback (real CLI, real parts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devkit.harness import free_port
from devkit.openbao import OpenBaoDevServer
from devkit.processes import ServeProcess
from grants.adapters.vault_client import vault_client
from tests.conftest import ROOT, process_env


@pytest.fixture
def env(tmp_path, openbao, bot_vault_token) -> Iterator[dict[str, str]]:
    with process_env(tmp_path, openbao.addr, bot_vault_token) as (_, env):
        yield env


def serve(env: dict[str, str], port: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port or free_port())],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    return result.stderr.strip()


def test_a_vault_token_without_the_bots_policy_stops_start_up(env, vault_root):
    weak = vault_root.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    line = one_line(serve({**env, "VAULT_TOKEN": weak}))
    assert line.startswith("jitbot: VAULT_TOKEN may not do what the bot needs (no update auth/token/revoke-accessor"), line
    assert "jitbot-bot policy" in line and "bao token create -policy=jitbot-bot" in line
    assert weak not in line


def test_a_revoked_vault_token_stops_start_up(env, vault_root):
    gone = vault_root.auth.token.create(policies=["jitbot-bot"], no_default_policy=True, ttl="10m")["auth"]["client_token"]
    vault_root.auth.token.revoke(gone)
    line = one_line(serve({**env, "VAULT_TOKEN": gone}))
    assert "refuses VAULT_TOKEN (Forbidden: permission denied): it expired or was revoked" in line, line


def test_vault_down_stops_start_up(env):
    line = one_line(serve({**env, "VAULT_ADDR": f"http://127.0.0.1:{free_port()}"}))
    assert line.startswith("jitbot: cannot reach Vault at http://127.0.0.1:") and "check VAULT_ADDR" in line, line


def test_a_sealed_vault_stops_start_up(env):
    with OpenBaoDevServer() as sealed:
        vault_client(sealed.addr, sealed.root_token).sys.seal()
        line = one_line(serve({**env, "VAULT_ADDR": sealed.addr, "VAULT_TOKEN": sealed.root_token}))
    assert line.startswith(f"jitbot: Vault at {sealed.addr} cannot serve the bot (") and "sealed" in line, line
    assert "unseal it" in line and sealed.root_token not in line


def test_postgresql_down_stops_start_up_without_the_password(env):
    line = one_line(serve({**env, "DATABASE_URL": f"postgresql+psycopg://jitbot:hunter2secret@127.0.0.1:{free_port()}/jitbot"}))
    assert line.startswith("jitbot: cannot use the database postgresql+psycopg://jitbot:***@127.0.0.1:"), line
    assert "Connection refused" in line and "check DATABASE_URL" in line
    assert "hunter2secret" not in line


def test_a_port_in_use_stops_start_up(env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(serve(env, port))
    assert line == (
        f"jitbot: port {port} on 127.0.0.1 is already in use (another jitbot, or another program): stop it, "
        "or choose another port with --port or PORT"
    )


def test_a_slack_token_slack_does_not_know_stops_start_up(env):
    line = one_line(serve({**env, "SLACK_BOT_TOKEN": "xoxb-not-this-workspace"}))
    assert line.startswith("jitbot: Slack refuses SLACK_BOT_TOKEN (invalid_auth)"), line


def test_a_catalog_with_several_problems_names_them_all_at_once(env, tmp_path):
    catalog = tmp_path / "policies" / "catalog.toml"
    text = catalog.read_text().replace('default_duration = "15m"', 'default_duration = "15x"', 1)
    catalog.write_text(
        text.replace('max_duration = "1h"', 'max_duration = "soon"', 1).replace(
            'approvers = ["', 'approvers = ["group:ghosts", "', 1
        )
    )
    result = serve(env)
    out = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in out, out
    for expected in ("`15x` is not a duration", "`soon` is not a duration", "unknown group `group:ghosts`"):
        assert expected in result.stderr, out


def test_the_root_token_starts_with_a_warning(env, openbao, tmp_path):
    bot = ServeProcess({**env, "VAULT_TOKEN": openbao.root_token}, tmp_path / "serve.log").start()
    try:
        assert bot.health()[0] == 200
    finally:
        bot.stop()
    log = (tmp_path / "serve.log").read_text()
    assert '"level": "warning"' in log and "VAULT_TOKEN is a root token: the bot needs only the jitbot-bot policy" in log
    assert openbao.root_token not in log
