"""SSH revocation through real `jitbot serve` processes on PostgreSQL, OpenBao and a real sshd: holders revoking at
the same moment through two replicas are all refused by the KRL fetched from either, and a revoke needs no Vault."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.processes import ServeProcess
from devkit.standin import SlackStandIn
from devkit.standin import message_text as shown
from tests.conftest import USERS, SettlingClient, process_env
from tests.databases import fresh_database
from tests.e2e.test_kinds_e2e import CERTIFICATE, PLATFORM, web_ssh_role  # noqa: F401
from tests.e2e.test_kinds_lifecycle_e2e import wait_until
from tests.e2e.test_processes import events
from tests.ssh_fixtures import SshServer, can_log_in, new_key
from tests.tcp_proxy import FreezableProxy

HOLDERS = [f"U0HOLD{n:03d}" for n in range(10)]


@pytest.fixture
def env(tmp_path: Path, openbao: Any, bot_vault_token: str) -> Iterator[tuple[SlackStandIn, dict[str, str]]]:
    """What two replicas share: one PostgreSQL database, the catalog (ten more developers), Slack and Vault."""
    developers = 'developers = ["U0DEV0001", "U0DEV0002", "U0DEV0003"]'
    edits = {developers: developers[:-1] + "".join(f', "{h}"' for h in HOLDERS) + "]"}
    with (
        fresh_database("postgresql", tmp_path) as url,
        process_env(
            tmp_path,
            openbao.addr,
            bot_vault_token,
            db_url=url,
            catalog_edits=edits,
            users=USERS | {h: h.lower() for h in HOLDERS},
        ) as env,
    ):
        yield env


def client(slack: SlackStandIn, bot: ServeProcess) -> SettlingClient:
    return SettlingClient(bot, slack)


def certificate_of(slack: SlackStandIn, bot: ServeProcess, holder: str, key: Path, reason: str) -> tuple[str, Path]:
    """The holder registers `key`, asks for web-ssh, PLATFORM approves; the delivered certificate, saved beside the key."""
    status, body = client(slack, bot).slash(holder, f"ssh-key {key.with_suffix('.pub').read_text()}")
    assert status == 200 and "SHA256:" in body["text"], body
    status, body = client(slack, bot).slash(holder, f"web-ssh 10m {reason}")
    assert status == 200 and "Request `JIT-" in body["text"], body
    rid = str(body["text"].split("`")[1])
    slack.wait_for(lambda: slack.find_message(lambda m: rid in shown(m) and "[Approve]" in shown(m)), timeout=30)
    assert client(slack, bot).click(PLATFORM, "approve", rid)[0] == 200
    dm = slack.wait_for(
        lambda: next((shown(m) for m in slack.dm_messages(holder) if rid in shown(m) and "cert-v01" in shown(m)), None),
        timeout=30,
    )
    certificate = key.parent / f"{key.name}-cert.pub"
    certificate.write_text(CERTIFICATE.search(str(dm)).group(1) + "\n")  # type: ignore[union-attr]
    return rid, certificate


def fetch_krl(bot: ServeProcess) -> bytes:
    with urllib.request.urlopen(f"{bot.url}/ssh/revoked.krl", timeout=10) as answer:  # the hosts' cron job
        assert answer.status == 200
        return bytes(answer.read())


def test_holders_revoking_at_once_through_two_replicas_are_all_refused_by_either_krl(
    env: tuple[SlackStandIn, dict[str, str]],
    tmp_path: Path,
    web_ssh_role: None,  # noqa: F811
    sshd: SshServer,
) -> None:
    slack, variables = env
    sshd.allow_principals("web-admin")
    replicas = [ServeProcess(variables, tmp_path / f"serve-{n}.log").start() for n in range(2)]
    try:
        grants = []
        for n, holder in enumerate(HOLDERS):
            key = new_key(tmp_path, f"holder{n}")
            rid, certificate = certificate_of(slack, replicas[n % 2], holder, key, f"INC-9{n:02d} restart nginx")
            grants.append((holder, rid, key, certificate))
        sshd.krl_path.write_bytes(fetch_krl(replicas[0]))
        assert all(can_log_in(sshd, key, certificate) for _, _, key, certificate in grants)

        start = threading.Barrier(len(grants))
        answers: list[int] = []

        def revoke(n: int) -> None:
            holder, rid = grants[n][:2]
            asking = client(slack, replicas[n % 2])
            start.wait()  # every holder at the same moment, half through each replica
            answers.append(asking.slash(holder, f"revoke {rid}")[0])

        threads = [threading.Thread(target=revoke, args=(n,)) for n in range(len(grants))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert answers == [200] * len(grants)
        url = variables["DATABASE_URL"]
        for _, rid, _, _ in grants:
            wait_until(lambda rid=rid: "revoked" in events(url, rid), within=30, what=f"{rid} was not revoked")  # type: ignore[misc]
        served = [fetch_krl(replica) for replica in replicas]
        assert served[0] == served[1]  # one list, whichever replica a host's fetch reaches
        for krl in served:
            sshd.krl_path.write_bytes(krl)
            assert [rid for _, rid, key, certificate in grants if can_log_in(sshd, key, certificate)] == []
    finally:
        for replica in replicas:
            replica.stop()


def test_an_ssh_revoke_with_vault_gone_is_recorded_and_listed_at_once(
    env: tuple[SlackStandIn, dict[str, str]],
    tmp_path: Path,
    openbao: Any,
    web_ssh_role: None,  # noqa: F811
    sshd: SshServer,
) -> None:
    slack, variables = env
    sshd.allow_principals("web-admin")
    host, port = openbao.addr.rsplit("//", 1)[1].split(":")
    with FreezableProxy((host, int(port))) as vault:
        bot = ServeProcess({**variables, "VAULT_ADDR": f"http://127.0.0.1:{vault.port}"}, tmp_path / "serve.log").start()
        try:
            holder, key = HOLDERS[0], new_key(tmp_path, "away")
            rid, certificate = certificate_of(slack, bot, holder, key, "INC-990 restart nginx")
            sshd.krl_path.write_bytes(fetch_krl(bot))
            assert can_log_in(sshd, key, certificate)
            vault.cut()  # Vault is gone for the bot: every connection refused, as with Vault stopped
            assert client(slack, bot).slash(holder, f"revoke {rid}")[0] == 200
            wait_until(lambda: "revoked" in events(variables["DATABASE_URL"], rid), within=30, what="the revoke was not recorded")
            assert "revoke_failed" not in events(variables["DATABASE_URL"], rid)
            sshd.krl_path.write_bytes(fetch_krl(bot))  # served while Vault is away
            assert not can_log_in(sshd, key, certificate)
        finally:
            bot.stop()
