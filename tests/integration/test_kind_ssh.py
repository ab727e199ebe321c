"""The `ssh` kind against a real OpenBao SSH CA and a real sshd: who logs in, until when, and after an early revoke."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import InvalidRequest

from devkit.openbao import OpenBaoDevServer
from grants.adapters.kinds import credential_kinds
from grants.adapters.kinds.ssh_ca import (
    SignedCertificate,
    pinned_key_id,
    sign_certificate,
    ssh_role_settings,
    write_ssh_role,
)
from grants.adapters.kinds.ssh_krl import is_revoked, write_krl
from grants.adapters.kinds.ssh_revocations import SshRevocations
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine
from grants.adapters.vault_client import VaultSession, vault_client
from grants.catalog import Catalog, parse_catalog
from grants.credentials import CredentialError, CredentialStatus, IssueOrder
from grants.ssh_keys import parse_public_key
from tests.databases import fresh_database
from tests.ssh_fixtures import SshServer, can_log_in, new_key

ROLE = "jit-web-ssh"
PRINCIPALS = ["web-admin"]


@pytest.fixture
def bot(openbao: OpenBaoDevServer, bot_vault_token: str, vault_root: hvac.Client, ssh_ca: str) -> hvac.Client:
    """The bot's own least-privilege token (jitbot-bot policy only), with the scope's signer role synced by root."""
    write_ssh_role(vault_root, ROLE, PRINCIPALS, timedelta(hours=1))
    write_ssh_role(vault_root, "jit-db-ssh", ["db-admin"], timedelta(hours=1))
    return vault_client(openbao.addr, bot_vault_token)


@pytest.fixture
def revocations(tmp_path: Path) -> Iterator[SshRevocations]:
    """The ssh kind's rows in a fresh (SQLite) database of the bot's schema."""
    with fresh_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        store = SqlStore(engine)
        yield SshRevocations(store)
        store.close()


def _sign(
    bot: hvac.Client, key: Path, lifetime: timedelta, request_id: str, principals: list[str] = PRINCIPALS
) -> tuple[SignedCertificate, Path]:
    certificate = sign_certificate(bot, ROLE, key.with_suffix(".pub").read_text(), principals, lifetime, request_id)
    path = key.parent / f"{key.name}-cert.pub"
    path.write_text(certificate.text + "\n", encoding="utf-8")
    return certificate, path


def test_the_certificate_logs_in_and_its_key_id_is_the_roles(bot: hvac.Client, sshd: SshServer, tmp_path: Path) -> None:
    sshd.allow_principals("web-admin")
    key = new_key(tmp_path, "alice")
    before = datetime.now(UTC)
    certificate, cert_path = _sign(bot, key, timedelta(minutes=10), "R-ssh-1")
    fingerprint = parse_public_key(key.with_suffix(".pub").read_text()).fingerprint
    assert certificate.key_id == pinned_key_id(ROLE, fingerprint) == f"jitbot-{ROLE}-{_hex(fingerprint)}"
    assert certificate.principals == ("web-admin",)
    assert certificate.serial > 0
    assert before + timedelta(minutes=9) < certificate.valid_before <= datetime.now(UTC) + timedelta(minutes=10, seconds=1)
    assert can_log_in(sshd, key, cert_path)
    # sshd's own log names the scope's role, the key and the serial (which the grant's `issued` event carries).
    assert f"ID {certificate.key_id} (serial {certificate.serial})" in sshd.log_path.read_text()


def _hex(fingerprint: str) -> str:
    return base64.b64decode(fingerprint.split(":", 1)[1] + "=").hex()


def test_the_bots_token_cannot_choose_a_key_id(bot: hvac.Client, vault_root: hvac.Client, tmp_path: Path) -> None:
    """A holder of the bot's token signing for itself cannot put another grant's request ID into a certificate."""
    public_key = new_key(tmp_path, "mallory").with_suffix(".pub").read_text()
    asked = {"public_key": public_key, "cert_type": "user", "valid_principals": "web-admin", "ttl": "60s"}
    with pytest.raises(InvalidRequest, match="setting key_id is not allowed by role"):
        bot.write_data(f"ssh-client-signer/sign/{ROLE}", data=asked | {"key_id": "JIT-OTHER001"})
    # A role an older `vault sync` wrote (the bot chose the key ID): the certificate is refused, with what to do.
    vault_root.write_data("ssh-client-signer/roles/jit-old-ssh", data=ssh_role_settings(PRINCIPALS, timedelta(hours=1))
                          | {"allow_user_key_ids": True, "key_id_format": ""})  # fmt: skip
    with pytest.raises(CredentialError, match=r"does not pin the key ID.*run `jitbot vault sync`"):
        sign_certificate(bot, "jit-old-ssh", public_key, PRINCIPALS, timedelta(minutes=1), "JIT-OLD00001")
    assert "unchanged" not in write_ssh_role(vault_root, "jit-old-ssh", PRINCIPALS, timedelta(hours=1))  # sync repairs it
    assert sign_certificate(bot, "jit-old-ssh", public_key, PRINCIPALS, timedelta(minutes=1), "JIT-OLD00001").key_id.startswith(
        "jitbot-jit-old-ssh-"
    )


def test_an_unsigned_key_and_a_wrong_principal_do_not_log_in(bot: hvac.Client, sshd: SshServer, tmp_path: Path) -> None:
    sshd.allow_principals("db-admin")  # this host lets only db-admin in as root
    key = new_key(tmp_path, "bob")
    _, cert_path = _sign(bot, key, timedelta(minutes=10), "R-ssh-2")
    assert not can_log_in(sshd, key, None)
    assert not can_log_in(sshd, key, cert_path)
    sshd.allow_principals("web-admin")
    assert can_log_in(sshd, key, cert_path)  # the same certificate, the right principal: proves the refusal above


def test_the_role_refuses_principals_beyond_the_scope(bot: hvac.Client, tmp_path: Path) -> None:
    key = new_key(tmp_path, "carol")
    with pytest.raises(CredentialError, match="refused to sign"):
        sign_certificate(bot, ROLE, key.with_suffix(".pub").read_text(), ["web-admin", "db-admin"], timedelta(minutes=5), "R-x")
    with pytest.raises(CredentialError, match="root"):
        sign_certificate(bot, ROLE, key.with_suffix(".pub").read_text(), ["root"], timedelta(minutes=5), "R-x")
    with pytest.raises(CredentialError, match="wildcard"):
        ssh_role_settings(["*"], timedelta(hours=1))


def test_the_bot_cannot_sign_past_the_roles_max_ttl(bot: hvac.Client, tmp_path: Path) -> None:
    key = new_key(tmp_path, "dave")
    # The role's max_ttl (the scope's longest total) bounds even a compromised bot: Vault refuses, signs nothing.
    with pytest.raises(CredentialError, match="ttl is larger than maximum allowed 3600"):
        _sign(bot, key, timedelta(hours=5), "R-long")


def test_after_its_validity_the_certificate_cannot_log_in(bot: hvac.Client, sshd: SshServer, tmp_path: Path) -> None:
    sshd.allow_principals("web-admin")
    key = new_key(tmp_path, "erin")
    certificate, cert_path = _sign(bot, key, timedelta(seconds=3), "R-short")
    assert can_log_in(sshd, key, cert_path)
    time.sleep(max(0.0, (certificate.valid_before - datetime.now(UTC)).total_seconds()) + 1.5)  # real validity under test
    assert not can_log_in(sshd, key, cert_path)


def test_after_an_early_revoke_and_a_krl_write_it_cannot_log_in(bot: hvac.Client, sshd: SshServer, tmp_path: Path) -> None:
    sshd.allow_principals("web-admin")
    revoked_key, kept_key = new_key(tmp_path, "frank"), new_key(tmp_path, "grace")
    revoked, revoked_cert = _sign(bot, revoked_key, timedelta(minutes=10), "R-revoked")
    _, kept_cert = _sign(bot, kept_key, timedelta(minutes=10), "R-kept")
    assert can_log_in(sshd, revoked_key, revoked_cert)
    write_krl(sshd.krl_path, sshd.ca_public_key, serials=[revoked.serial])
    assert is_revoked(sshd.krl_path, revoked_cert) and not is_revoked(sshd.krl_path, kept_cert)
    assert not can_log_in(sshd, revoked_key, revoked_cert)
    assert can_log_in(sshd, kept_key, kept_cert)  # only that grant's certificate is revoked


def test_a_krl_by_key_id_revokes_too_and_the_write_leaves_no_temporary_files(
    bot: hvac.Client, sshd: SshServer, tmp_path: Path
) -> None:
    sshd.allow_principals("web-admin")
    key = new_key(tmp_path, "heidi")
    certificate, cert_path = _sign(bot, key, timedelta(minutes=10), "R-by-id")
    write_krl(sshd.krl_path, sshd.ca_public_key, key_ids=[certificate.key_id])
    assert not can_log_in(sshd, key, cert_path)
    assert sorted(p.name for p in sshd.krl_path.parent.iterdir() if p.name.startswith(".krl-")) == []


def test_role_sync_is_idempotent_and_repairs_a_widened_role(vault_root: hvac.Client, ssh_ca: str) -> None:
    assert "created" in write_ssh_role(vault_root, "jit-sync-test", ["deploy"], timedelta(minutes=30))
    assert write_ssh_role(vault_root, "jit-sync-test", ["deploy"], timedelta(minutes=30)).endswith("unchanged")
    vault_root.write_data(
        "ssh-client-signer/roles/jit-sync-test", data={"key_type": "ca", "allowed_users": "*", "allow_user_certificates": True}
    )
    assert "updated" in write_ssh_role(vault_root, "jit-sync-test", ["deploy"], timedelta(minutes=30))
    data = vault_root.read("ssh-client-signer/roles/jit-sync-test")["data"]
    assert data["allowed_users"] == "deploy" and data["max_ttl"] == 1800


def _ssh_catalog(ttl_max: str = "1h") -> Catalog:
    scope = {
        "description": "SSH to web",
        "credential": "ssh",
        "ssh_role": ROLE,
        "principals": PRINCIPALS,
        "requesters": ["*"],
        "approvers": ["U0APPR001"],
        "max_duration": ttl_max,
    }
    return parse_catalog({"scopes": {"web-ssh": scope}})


def _order(request_id: str, public_key: str | None, ttl: timedelta = timedelta(minutes=10)) -> IssueOrder:
    return IssueOrder(request_id, "web-ssh", "U0REQ001", ttl, datetime.now(UTC) + ttl, public_key=public_key)


def test_the_ssh_kind_behind_the_seam_issues_revokes_by_krl_and_extends(
    bot: hvac.Client, vault_root: hvac.Client, sshd: SshServer, tmp_path: Path, revocations: SshRevocations
) -> None:
    sshd.allow_principals("web-admin")
    # The JITBOT_SSH_KRL copy is the host's file here: each revoke rewrites it from the database.
    kinds = credential_kinds(VaultSession(bot), ssh=revocations, ssh_krl_copy=sshd.krl_path)
    catalog = _ssh_catalog()
    operator = credential_kinds(VaultSession(vault_root))
    assert "ssh role ssh-client-signer/jit-web-ssh: unchanged" in operator.sync(catalog)  # the bot fixture wrote it
    scope = catalog.scopes["web-ssh"]
    key = new_key(tmp_path, "ivan")
    with pytest.raises(CredentialError, match="no SSH public key is registered"):
        kinds.issue(_order("R-seam-0", None), scope)
    with pytest.raises(CredentialError, match="PRIVATE key"):
        kinds.issue(_order("R-seam-0", key.read_text()), scope)
    issued = kinds.issue(_order("R-seam-1", key.with_suffix(".pub").read_text()), scope)
    assert issued.handle.kind == "ssh" and issued.delivery.secret is None and issued.delivery.code
    assert issued.facts["key_fingerprint"].startswith("SHA256:")
    cert_path = tmp_path / "ivan-cert.pub"
    cert_path.write_text(str(issued.delivery.code) + "\n")
    assert can_log_in(sshd, key, cert_path)
    assert kinds.status(issued.handle, "R-seam-1") is CredentialStatus.ALIVE
    extended = kinds.extend(issued.handle, _order("R-seam-1", key.with_suffix(".pub").read_text(), timedelta(minutes=20)), scope)
    assert extended.handle != issued.handle  # signed again: a new serial
    kinds.revoke(issued.handle, "R-seam-1")  # what the core does with the old handle after an extension
    assert kinds.status(issued.handle, "R-seam-1") is CredentialStatus.GONE
    assert not can_log_in(sshd, key, cert_path)
    new_cert = tmp_path / "ivan-new-cert.pub"
    new_cert.write_text(str(extended.delivery.code) + "\n")
    assert can_log_in(sshd, key, new_cert)
    kinds.revoke(extended.handle, "R-seam-1")
    kinds.revoke(extended.handle, "R-seam-1")  # idempotent
    assert not can_log_in(sshd, key, new_cert)
    with pytest.raises(CredentialError, match="permission denied"):
        kinds.sync(catalog)  # the bot's own token cannot write signer roles: an operator runs `jitbot vault sync`


def test_an_extension_after_a_backward_clock_jump_never_outlives_the_approved_end(
    bot: hvac.Client, tmp_path: Path, revocations: SshRevocations
) -> None:
    """The bot's clock jumped 20 minutes back between issue and extension: by its reckoning 35m are left, but the grant
    ends 15m from now. A certificate cannot be recalled, so its validity must stop at the approved end regardless."""
    kinds = credential_kinds(VaultSession(bot), ssh=revocations)
    scope = _ssh_catalog().scopes["web-ssh"]
    public_key = new_key(tmp_path, "judy").with_suffix(".pub").read_text()
    order = _order("R-jump-1", public_key)
    first = kinds.issue(order, scope)
    wrong_now, until = datetime.now(UTC) - timedelta(minutes=20), order.until + timedelta(minutes=5)
    jumped = replace(order, ttl=until - wrong_now, until=until, extends_by=timedelta(minutes=5))
    extended = kinds.extend(first.handle, jumped, scope)
    assert extended.valid_until is not None
    assert until - timedelta(minutes=1) <= extended.valid_until <= until + timedelta(seconds=2)
    assert kinds.status(extended.handle, "R-jump-1") is CredentialStatus.ALIVE  # delivered, not revoked


def test_no_time_left_signs_nothing(bot: hvac.Client, tmp_path: Path, revocations: SshRevocations) -> None:
    """A ttl of 0 would make Vault sign for the role's default (the scope's longest total): refuse instead."""
    kinds = credential_kinds(VaultSession(bot), ssh=revocations)
    scope = _ssh_catalog().scopes["web-ssh"]
    public_key = new_key(tmp_path, "kim").with_suffix(".pub").read_text()
    first = kinds.issue(_order("R-late-1", public_key), scope)
    ended = datetime.now(UTC) - timedelta(seconds=30)
    past = IssueOrder("R-late-1", "web-ssh", "U0REQ001", timedelta(minutes=5), ended, None, public_key, timedelta(minutes=5))
    with pytest.raises(CredentialError, match="no time left"):
        kinds.extend(first.handle, past, scope)
