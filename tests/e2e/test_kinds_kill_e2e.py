"""Real `jitbot serve` processes killed with SIGKILL, on SQLite and PostgreSQL: an extension killed between the Vault
call and the store write (database, ssh), and an identity grant whose bot was killed, ended by `jitbot vault sweep`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import psycopg
import pytest
from hvac.exceptions import Forbidden, InvalidRequest
from sqlalchemy import create_engine, text

from devkit.processes import ServeProcess
from devkit.standin import SlackStandIn
from devkit.standin import message_text as shown
from tests.conftest import APPROVER, REQUESTER, ROOT, SettlingClient, process_env
from tests.e2e.test_kinds_crash_e2e import _logins_of
from tests.e2e.test_kinds_e2e import CERTIFICATE, PLATFORM, SECRET, linked_requester, web_ssh_role  # noqa: F401
from tests.e2e.test_kinds_lifecycle_e2e import KIND_EDITS, wait_until
from tests.e2e.test_processes import events
from tests.integration.test_kind_database import PG_HOST, TABLE, _wait_until_gone, database_engine  # noqa: F401
from tests.ssh_fixtures import SshServer, can_log_in, new_key

SIGKILLED = -9


@pytest.fixture
def env(tmp_path: Path, db_url: str, openbao: Any, bot_vault_token: str) -> Iterator[tuple[SlackStandIn, dict[str, str]]]:
    krl = tmp_path / "krl" / "revoked.krl"
    with process_env(tmp_path, openbao.addr, bot_vault_token, db_url=db_url, catalog_edits=KIND_EDITS, JITBOT_SSH_KRL=krl) as env:
        yield env


def crashing_bot(variables: dict[str, str], tmp_path: Path, die_at: str) -> ServeProcess:
    """A real bot that SIGKILLs itself instead of writing `die_at` (tests/crash_serve.py); what it made goes to made.jsonl."""
    crash = {"JITBOT_TEST_DIE_AT": die_at, "JITBOT_TEST_RECORD": str(tmp_path / "made.jsonl")}
    return ServeProcess({**variables, **crash}, tmp_path / "serve-crashing.log", module="tests.crash_serve").start()


def made(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "made.jsonl").read_text().splitlines()]


def dms(slack: SlackStandIn, user: str, rid: str, words: str) -> list[str]:
    return [shown(m) for m in slack.dm_messages(user) if rid in shown(m) and words in shown(m)]


def nth(slack: SlackStandIn, user: str, rid: str, words: str, n: int = 1) -> str:
    return str(slack.wait_for(lambda: found[n - 1] if len(found := dms(slack, user, rid, words)) >= n else None, timeout=20))


def granted(slack: SlackStandIn, bot: ServeProcess, text_: str, approver: str) -> str:
    client = SettlingClient(bot, slack)
    status, body = client.slash(REQUESTER, text_)
    assert status == 200 and "Request `JIT-" in body["text"], body
    rid = str(body["text"].split("`")[1])
    slack.wait_for(lambda: slack.find_message(lambda m: rid in shown(m) and "[Approve]" in shown(m)))
    status, _ = client.click(approver, "approve", rid)
    assert status == 200
    return rid


def extend_and_die(slack: SlackStandIn, bot: ServeProcess, rid: str, by: str) -> None:
    """The extension reaches Vault, and the process dies before the store hears of it."""
    try:
        SettlingClient(bot, slack).slash(REQUESTER, f"extend {rid} {by}")
    except OSError:
        pass  # the process may die before it answers
    assert bot.died() == SIGKILLED, (bot.log_path.read_text())[-2000:]


def extend(slack: SlackStandIn, bot: ServeProcess, db_url: str, rid: str, by: str) -> None:
    status, _ = SettlingClient(bot, slack).slash(REQUESTER, f"extend {rid} {by}")
    assert status == 200
    wait_until(lambda: "extended" in events(db_url, rid), within=20, what="the second extension was not recorded")


def stored_credential(db_url: str, rid: str) -> str:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        accessor = connection.execute(text("SELECT accessor FROM requests WHERE id = :r"), {"r": rid}).scalar_one()
    engine.dispose()
    return str(accessor)


def unwrap(vault_addr: str, dm: str) -> dict[str, str]:
    wrapping = re.search(r"unwrap ([A-Za-z0-9._-]{20,})", dm).group(1)  # type: ignore[union-attr]
    return dict(hvac.Client(url=vault_addr, token=wrapping).sys.unwrap()["data"])


def logs_in(creds: dict[str, str]) -> bool:
    try:
        with psycopg.connect(f"postgresql://{PG_HOST}/test", user=creds["username"], password=creds["password"]) as login:
            return login.execute(f"SELECT count(*) FROM {TABLE}").fetchone() is not None
    except psycopg.OperationalError:
        return False


def test_a_database_extension_killed_between_vault_and_the_store_leaves_one_working_login(
    env: tuple[SlackStandIn, dict[str, str]],
    tmp_path: Path,
    db_url: str,
    openbao: Any,
    vault_root: hvac.Client,
    database_engine: None,  # noqa: F811
) -> None:
    slack, variables = env
    bot = crashing_bot(variables, tmp_path, "extended")
    try:
        rid = granted(slack, bot, "orders-db-read 20s INC-70 count stuck orders", APPROVER)
        old = unwrap(openbao.addr, nth(slack, REQUESTER, rid, "unwrap"))
        assert logs_in(old)
        extend_and_die(slack, bot, rid, "5s")
    finally:
        bot.kill()
    first, crashed = made(tmp_path)
    assert crashed["handle"] != first["handle"]  # Vault made the extension's reader token and its login
    assert events(db_url, rid) == ["requested", "approved", "issued"] and stored_credential(db_url, rid) == first["handle"]
    logins = _logins_of(rid)
    assert len(logins) == 2  # the crashed attempt's login exists, but its wrapped password died with the bot
    (orphan,) = [name for name in logins if name != old["username"]]

    bot = ServeProcess(variables, tmp_path / "serve-2.log").start()
    try:
        assert logs_in(old)  # the grant's credential is the recorded one, untouched by the crash
        reader = vault_root.auth.token.lookup_accessor(crashed["handle"].split(":", 1)[1].partition("@")[0])["data"]
        assert datetime.fromisoformat(reader["expire_time"]) <= datetime.fromisoformat(crashed["until"]) + timedelta(seconds=1)
        extend(slack, bot, db_url, rid, "5s")  # asked again (nothing was recorded, so the extension is still allowed)
        new = unwrap(openbao.addr, nth(slack, REQUESTER, rid, "unwrap", 2))
        _wait_until_gone(old["username"], within=15)  # the replaced login is revoked as designed
        assert logs_in(new) and not logs_in(old)
        assert len(dms(slack, REQUESTER, rid, "unwrap")) == 2  # the crashed attempt's credential reached nobody
        # The crashed attempt's login ends with its reader token's TTL, never later than that extension would have.
        left = (datetime.fromisoformat(crashed["until"]) - datetime.now(UTC)).total_seconds()
        # (The grant itself ends about then too, so only the orphan's end is waited for: both may go in one poll.)
        wait_until(lambda: orphan not in _logins_of(rid), within=max(left, 0) + 30, what="the orphan login survived")
        assert events(db_url, rid).count("extended") == 1
    finally:
        bot.stop()


def test_an_ssh_extension_killed_between_vault_and_the_store_leaves_one_working_certificate(
    env: tuple[SlackStandIn, dict[str, str]],
    tmp_path: Path,
    db_url: str,
    web_ssh_role: None,  # noqa: F811
    sshd: SshServer,
) -> None:
    slack, variables = env
    sshd.allow_principals("web-admin")
    key = new_key(tmp_path, "dana")
    bot = crashing_bot(variables, tmp_path, "extended")
    try:
        status, body = SettlingClient(bot, slack).slash(REQUESTER, f"ssh-key {key.with_suffix('.pub').read_text()}")
        assert status == 200 and "SHA256:" in body["text"], body
        rid = granted(slack, bot, "web-ssh 20s INC-71 restart nginx", PLATFORM)
        old = tmp_path / "old-cert.pub"
        old.write_text(CERTIFICATE.search(nth(slack, REQUESTER, rid, "cert-v01")).group(1) + "\n")  # type: ignore[union-attr]
        assert can_log_in(sshd, key, old)
        extend_and_die(slack, bot, rid, "5s")
    finally:
        bot.kill()
    first, crashed = made(tmp_path)
    assert events(db_url, rid) == ["requested", "approved", "issued"] and stored_credential(db_url, rid) == first["handle"]
    orphan = tmp_path / "orphan-cert.pub"
    orphan.write_text(crashed["code"] + "\n")  # public; signed by Vault, delivered to nobody
    assert datetime.fromisoformat(crashed["valid_until"]) <= datetime.fromisoformat(crashed["until"]) + timedelta(seconds=1)

    bot = ServeProcess(variables, tmp_path / "serve-2.log").start()
    try:
        assert can_log_in(sshd, key, old)  # the recorded certificate still works, unchanged
        extend(slack, bot, db_url, rid, "5s")
        new = tmp_path / "new-cert.pub"
        new.write_text(CERTIFICATE.search(nth(slack, REQUESTER, rid, "cert-v01", 2)).group(1) + "\n")  # type: ignore[union-attr]
        assert len(dms(slack, REQUESTER, rid, "cert-v01")) == 2  # the crashed attempt's certificate reached nobody
        with urllib.request.urlopen(f"{bot.url}/ssh/revoked.krl", timeout=10) as answer:
            sshd.krl_path.write_bytes(answer.read())  # the hosts' cron job
        assert not can_log_in(sshd, key, old) and can_log_in(sshd, key, new)  # the replaced one is revoked as designed
        # Vault cannot recall the crashed attempt's certificate: it ends at its validity, that attempt's end.
        left = (datetime.fromisoformat(crashed["valid_until"]) - datetime.now(UTC)).total_seconds()
        wait_until(lambda: not can_log_in(sshd, key, orphan), within=max(left, 0) + 5, what="the orphan certificate outlived it")
        assert events(db_url, rid).count("extended") == 1
    finally:
        bot.stop()


def test_jitbot_vault_sweep_ends_an_identity_grant_whose_bot_was_killed(
    env: tuple[SlackStandIn, dict[str, str]],
    tmp_path: Path,
    db_url: str,
    openbao: Any,
    vault_root: hvac.Client,
    linked_requester: str,  # noqa: F811
) -> None:
    slack, variables = env
    bot = ServeProcess(variables, tmp_path / "serve.log").start()
    try:
        rid = granted(slack, bot, "payments-identity 4s INC-72 check a refund", APPROVER)
        wait_until(lambda: "issued" in events(db_url, rid), within=20, what="the identity grant was not issued")
        assert _reads(openbao.addr, linked_requester)
    finally:
        bot.kill()  # SIGKILL: nothing will delete the group, which has no TTL
    assert bot.process is not None and bot.process.returncode == SIGKILLED
    ends = datetime.fromisoformat(vault_root.read(f"identity/group/name/jit-{rid}")["data"]["metadata"]["expires_at"])
    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 1)  # the grant's end passes with no bot
    assert _reads(openbao.addr, linked_requester)  # fails open: the reason the sweeper exists

    # docs/kinds.md's cron line: the sweeper's own small-policy token, no database, no Slack.
    sweeper = vault_root.auth.token.create(policies=["jitbot-sweeper"], no_default_policy=True, ttl="5m")["auth"]["client_token"]
    cron_env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": sweeper,
        "JITBOT_CATALOG": variables["JITBOT_CATALOG"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "vault", "sweep"],
        cwd=tmp_path,
        env=cron_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"deleted jit-{rid}: expired at" in result.stdout
    assert vault_root.read(f"identity/group/name/jit-{rid}") is None
    assert not _reads(openbao.addr, linked_requester)  # the person's existing token lost the policy
    assert events(db_url, rid) == ["requested", "approved", "issued"]  # the bot's record waits for its own restart


def _reads(vault_addr: str, token: str) -> bool:
    try:
        hvac.Client(url=vault_addr, token=token).secrets.kv.v2.read_secret_version(path=SECRET, raise_on_deleted_version=True)
    except (Forbidden, InvalidRequest):
        return False
    return True
