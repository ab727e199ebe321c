"""Real `jitbot serve` processes: killed with grants active and restarted; no secret in logs, database or exports."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import hvac
import pytest
from hvac.exceptions import Forbidden
from sqlalchemy import create_engine, inspect, text

from devkit.processes import ServeProcess
from devkit.standin import SlackStandIn, message_text
from tests.conftest import APPROVER, BOT_TOKEN, REQUESTER, ROOT, SIGNING_SECRET, WRAP_TOKEN, SettlingClient, process_env


@pytest.fixture
def env(tmp_path, db_url, openbao, bot_vault_token):
    with process_env(tmp_path, openbao.addr, bot_vault_token, db_url=db_url) as env:
        yield env


def grant(slack: SlackStandIn, bot: ServeProcess, text_: str, vault_addr: str) -> tuple[str, str, str]:
    client = SettlingClient(bot, slack)
    status, body = client.slash(REQUESTER, text_)
    assert status == 200, body
    rid = body["text"].split("`")[1]
    slack.wait_for(lambda: slack.find_message(lambda m: rid in message_text(m) and "[Approve]" in message_text(m)))
    client.click(APPROVER, "approve", rid)
    dm = slack.wait_for(lambda: next((m for m in slack.dm_messages(REQUESTER) if rid in m["text"] and "```" in m["text"]), None))
    wrapping = WRAP_TOKEN.search(dm["text"]).group(1)
    token = hvac.Client(url=vault_addr, token=wrapping).sys.unwrap()["auth"]["client_token"]
    return rid, wrapping, token


def events(db_url: str, rid: str) -> list[str]:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT event FROM audit_events WHERE request_id = :r ORDER BY seq"), {"r": rid})
        names = [r[0] for r in rows]
    engine.dispose()
    return names


def test_killed_bot_restarted_after_expiry_records_and_revokes(env, tmp_path, openbao, db_url):
    slack, variables = env
    first = ServeProcess(variables, tmp_path / "serve-1.log").start()
    try:
        rid, _, token = grant(slack, first, "db-admin-staging 3s migration before the crash", openbao.addr)
        first.kill()
        time.sleep(3.5)  # the grant's real TTL is what is under test here
        # Vault's own TTL ended access while the bot was dead; the database still says active.
        with pytest.raises(Forbidden):
            hvac.Client(url=openbao.addr, token=token).auth.token.lookup_self()
        assert events(db_url, rid) == ["requested", "approved", "issued"]
    finally:
        first.kill()
    second = ServeProcess(variables, tmp_path / "serve-2.log")
    started = time.monotonic()
    second.start()
    try:
        deadline = started + 10
        while "expired" not in events(db_url, rid):
            assert time.monotonic() < deadline, events(db_url, rid)
            time.sleep(0.1)
        assert events(db_url, rid) == ["requested", "approved", "issued", "expired"]
        slack.wait_for(lambda: any(rid in m["text"] and "ended at" in m["text"] for m in slack.dm_messages(REQUESTER)))
    finally:
        second.stop()
    verify = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", "verify"], cwd=ROOT, env=second.env, capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and "4 events verified" in verify.stdout


def test_secrets_reach_no_log_database_export_or_channel(env, tmp_path, openbao, db_url):
    slack, variables = env
    bot = ServeProcess(variables, tmp_path / "serve.log").start()
    try:
        rid, wrapping, token = grant(slack, bot, "payments-read 10m INC-77 look at refunds", openbao.addr)
        client = SettlingClient(bot, slack)
        client.slash(REQUESTER, f"revoke {rid}")
        deadline = time.monotonic() + 10
        while "revoked" not in events(db_url, rid):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        bot.stop()
    secrets = {wrapping, token, BOT_TOKEN, SIGNING_SECRET, variables["VAULT_TOKEN"]}
    haystacks = {"log": (tmp_path / "serve.log").read_text()}
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"export.{fmt}"
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "audit", "export", "--format", fmt, "-o", str(out)],
            cwd=ROOT,
            env=bot.env,
            check=True,
            timeout=60,
        )
        haystacks[fmt] = out.read_text()
    assert rid in haystacks["csv"] and rid in haystacks["jsonl"]
    engine = create_engine(db_url)
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            haystacks[f"table {table}"] = repr(list(connection.execute(text(f"SELECT * FROM {table}"))))
    engine.dispose()
    for channel, messages in slack.messages.items():
        if channel != "D" + REQUESTER[1:]:
            haystacks[f"channel {channel}"] = repr(messages)
    assert '"role": "serve"' in haystacks["log"]  # the log was really written
    for where, haystack in haystacks.items():
        for secret in secrets:
            assert secret not in haystack, f"a secret leaked into the {where}"
    # The one place the wrapping token may appear: the requester's own DM.
    assert any(wrapping in m["text"] for m in slack.dm_messages(REQUESTER))


def test_socket_mode_is_used_when_an_app_token_is_set(env, tmp_path):
    slack, variables = env
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, **variables, "SLACK_APP_TOKEN": "xapp-1-A0JITBOT-test"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The stand-in has no WebSocket endpoint: the bot asks for one, is refused, says why and stops.
    assert result.returncode == 1
    assert slack.calls_to("apps.connections.open"), "Socket Mode asked the (configured) Slack API for a WebSocket URL"
    assert "Socket Mode could not connect" in result.stderr and "xapp-1-A0JITBOT-test" not in result.stderr
