"""SSH revocations in the shared database, against real OpenBao, PostgreSQL and sshd: concurrent revokes through two
replicas lose no serial, a serial stays listed until its certificate's own end, and a revoke needs no Vault."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest

from bot.web import krl_response
from devkit.openbao import OpenBaoDevServer
from grants.adapters.kinds.ssh_ca import write_ssh_role
from grants.adapters.kinds.ssh_kind import SshKind
from grants.adapters.kinds.ssh_revocations import HOST_SKEW, SshRevocations
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine
from grants.adapters.vault_client import vault_client
from grants.catalog import parse_catalog
from grants.catalog_kinds import SshScope
from grants.credentials import CredentialHandle, CredentialStatus, IssueOrder
from tests.databases import fresh_database
from tests.ssh_fixtures import SshServer, can_log_in, new_key
from tests.tcp_proxy import FreezableProxy

PRINCIPALS = ["web-admin"]


def _scope(role: str, max_duration: str) -> SshScope:
    scope = {"description": "SSH", "credential": "ssh", "ssh_role": role, "principals": PRINCIPALS,
             "requesters": ["*"], "approvers": ["U0APPR001"], "max_duration": max_duration}  # fmt: skip
    parsed = parse_catalog({"scopes": {"web-ssh": scope}}).scopes["web-ssh"]
    assert isinstance(parsed, SshScope)
    return parsed


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgresql", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


class Replica:
    """What one bot process holds: its own engine on the shared database and its own Vault client."""

    def __init__(self, url: str, vault: hvac.Client, now: object = None):
        self.store = SqlStore(make_engine(url))
        self.revocations = SshRevocations(self.store, now) if now is not None else SshRevocations(self.store)  # type: ignore[arg-type]
        self.kind = SshKind(vault, self.revocations)

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def bot(openbao: OpenBaoDevServer, bot_vault_token: str, vault_root: hvac.Client, ssh_ca: str) -> hvac.Client:
    write_ssh_role(vault_root, "jit-web-ssh", PRINCIPALS, timedelta(hours=1))
    write_ssh_role(vault_root, "jit-long-ssh", PRINCIPALS, timedelta(hours=48))
    return vault_client(openbao.addr, bot_vault_token)


def _issue(kind: SshKind, scope: SshScope, key: Path, rid: str, ttl: timedelta) -> tuple[CredentialHandle, Path]:
    order = IssueOrder(rid, "web-ssh", "U0REQ001", ttl, datetime.now(UTC) + ttl, public_key=key.with_suffix(".pub").read_text())
    issued = kind.issue(order, scope)
    certificate = key.parent / f"{key.name}-cert.pub"
    certificate.write_text(str(issued.delivery.code) + "\n", encoding="utf-8")
    return issued.handle, certificate


def test_concurrent_revokes_through_two_replicas_lose_no_serial(
    bot: hvac.Client, pg_url: str, sshd: SshServer, tmp_path: Path
) -> None:
    sshd.allow_principals(*PRINCIPALS)
    a, b = Replica(pg_url, bot), Replica(pg_url, bot)
    try:
        scope = _scope("jit-web-ssh", "1h")
        grants = []
        for n in range(12):
            key = new_key(tmp_path, f"holder{n}")
            handle, certificate = _issue((a, b)[n % 2].kind, scope, key, f"JIT-RACE{n:04d}", timedelta(minutes=10))
            grants.append((handle, key, certificate))
        kept_key = new_key(tmp_path, "kept")
        _, kept_cert = _issue(a.kind, scope, kept_key, "JIT-KEPT0001", timedelta(minutes=10))
        start = threading.Barrier(len(grants))
        errors: list[BaseException] = []

        def revoke(n: int) -> None:
            start.wait()  # all at once: the old read-modify-write of one list kept 1 of 12
            try:
                (a, b)[n % 2].kind.revoke(grants[n][0], f"JIT-RACE{n:04d}")
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=revoke, args=(n,)) for n in range(len(grants))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        from_a, from_b = a.kind.krl_bytes(), b.kind.krl_bytes()
        assert from_a == from_b  # either replica serves the same list
        assert a.revocations.revoked_serials("ssh-client-signer") == sorted(int(h.id) for h, _, _ in grants)
        for served in (from_a, from_b):
            sshd.krl_path.write_bytes(served)  # the host's cron job, whichever replica it reached
            assert [n for n, (_, key, cert) in enumerate(grants) if can_log_in(sshd, key, cert)] == []
            assert can_log_in(sshd, kept_key, kept_cert)  # the list revokes those serials, not everyone
        assert all(b.kind.status(h, "") is CredentialStatus.GONE for h, _, _ in grants)
    finally:
        a.close()
        b.close()


def test_a_48h_certificate_revoked_early_is_refused_until_its_own_end(
    bot: hvac.Client, pg_url: str, sshd: SshServer, tmp_path: Path
) -> None:
    sshd.allow_principals(*PRINCIPALS)
    now = [datetime.now(UTC)]
    replica = Replica(pg_url, bot, lambda: now[0])
    try:
        key = new_key(tmp_path, "long")
        handle, certificate = _issue(replica.kind, _scope("jit-long-ssh", "48h"), key, "JIT-LONG0001", timedelta(hours=48))
        assert can_log_in(sshd, key, certificate)
        replica.kind.revoke(handle, "JIT-LONG0001")
        now[0] += timedelta(hours=25)  # past the old hard-coded day of retention
        sshd.krl_path.write_bytes(replica.kind.krl_bytes())
        assert not can_log_in(sshd, key, certificate)  # the certificate is valid for sshd: only the KRL refuses it
        now[0] += timedelta(hours=23) + HOST_SKEW + timedelta(seconds=5)  # past its validity: sshd refuses it by itself
        assert replica.revocations.revoked_serials("ssh-client-signer") == []
        other = Replica(pg_url, bot, lambda: now[0])
        other.revocations.revoke("ssh-client-signer", 1)  # any write prunes rows past their end
        with replica.store.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT serial FROM ssh_certificates").scalars().all() == ["1"]
        other.close()
    finally:
        replica.close()


def test_a_revoke_and_the_krl_need_no_vault(
    bot: hvac.Client, openbao: OpenBaoDevServer, bot_vault_token: str, pg_url: str, sshd: SshServer, tmp_path: Path
) -> None:
    sshd.allow_principals(*PRINCIPALS)
    host, port = openbao.addr.rsplit("//", 1)[1].split(":")
    proxy = FreezableProxy((host, int(port)))
    through = vault_client(f"http://127.0.0.1:{proxy.port}", bot_vault_token)
    replica = Replica(pg_url, through)
    try:
        key = new_key(tmp_path, "away")
        handle, certificate = _issue(replica.kind, _scope("jit-web-ssh", "1h"), key, "JIT-AWAY0001", timedelta(minutes=10))
        proxy.cut()  # Vault is gone for this replica: connections refused, as with Vault stopped
        replica.kind.revoke(handle, "JIT-AWAY0001")
        assert replica.kind.status(handle, "JIT-AWAY0001") is CredentialStatus.GONE
        sshd.krl_path.write_bytes(replica.kind.krl_bytes())  # the CA key was cached in the database when it was signed
        assert not can_log_in(sshd, key, certificate)
        fresh = Replica(pg_url, vault_client("http://127.0.0.1:1", bot_vault_token))  # a replica that never reached Vault
        assert fresh.kind.krl_bytes() == replica.kind.krl_bytes()
        fresh.close()
    finally:
        replica.close()
        proxy.close()


def test_serials_an_older_bot_revoked_into_its_file_stay_revoked(pg_url: str, vault_root: hvac.Client, tmp_path: Path) -> None:
    legacy = tmp_path / "revoked.revoked.json"
    legacy.write_text(json.dumps({"4242": "2026-12-07T10:00:00+00:00", "17": "2026-12-07T11:00:00+00:00"}))
    replica = Replica(pg_url, vault_root)
    try:
        assert replica.kind.adopt_legacy(legacy) == 2
        assert replica.revocations.revoked_serials("ssh-client-signer") == [17, 4242]
        assert not legacy.exists() and (tmp_path / "revoked.revoked.json.imported").exists()
        assert replica.kind.adopt_legacy(legacy) == 0  # once
        legacy.write_text(json.dumps({"99": "2026-12-07T10:00:00+00:00"}))
        real_rename = Path.rename

        def taken_meanwhile(self: Path, target: Path) -> Path:
            self.unlink()  # the worker process took it between this process's read and rename
            return real_rename(self, target)  # FileNotFoundError, as then

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Path, "rename", taken_meanwhile)
            assert replica.kind.adopt_legacy(legacy) == 1
    finally:
        replica.close()


def test_the_served_list_is_a_503_while_the_database_is_down(bot: hvac.Client, pg_url: str, tmp_path: Path) -> None:
    """Hosts keep their last good copy on a failed fetch (`curl -f`): never an empty list that would un-revoke."""
    replica = Replica(pg_url, bot)
    cut_off = Replica(pg_url.replace("@127.0.0.1:5432/", "@127.0.0.1:1/"), bot)  # its database refuses connections
    answered: list[str] = []
    try:
        handle, _ = _issue(
            replica.kind, _scope("jit-web-ssh", "1h"), new_key(tmp_path, "db"), "JIT-DBDOWN01", timedelta(minutes=5)
        )
        replica.kind.revoke(handle, "JIT-DBDOWN01")
        body = krl_response(lambda status, headers: answered.append(status), replica.kind.krl_bytes)
        assert answered == ["200 OK"] and body[0].startswith(b"SSHKRL")
        body = krl_response(lambda status, headers: answered.append(status), cut_off.kind.krl_bytes)
        assert answered[1] == "503 Service Unavailable" and b"cannot be built" in body[0]
    finally:
        replica.close()
        cut_off.close()
