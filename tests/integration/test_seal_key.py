"""The credential seal key in a real OpenBao (made by `vault sync`, read-only to the bot) and the one-call revoke it
allows: a sealed vault_token grant is revoked by a token that may not even look accessors up."""

from __future__ import annotations

from datetime import timedelta

import hvac
import pytest
from hvac.exceptions import Forbidden

from devkit.openbao import OpenBaoDevServer
from grants.adapters.kinds.vault_token import VaultTokenKind
from grants.adapters.seal_key import SEAL_KEY_PATH, ensure_seal_key, open_sealer
from grants.adapters.vault_client import vault_client
from grants.credentials import CredentialError
from tests.integration.test_vault_issuer import PAYMENTS_READ, approved, unwrap


def test_sync_made_the_key_once_and_the_bot_may_read_but_never_replace_it(
    vault_root: hvac.Client, vault_synced: list[str], openbao: OpenBaoDevServer, bot_vault_token: str
) -> None:
    assert any(line.startswith(f"seal key secret/{SEAL_KEY_PATH}: ") for line in vault_synced)
    before = vault_root.secrets.kv.v2.read_secret_version(
        path=SEAL_KEY_PATH, mount_point="secret", raise_on_deleted_version=True
    )["data"]
    assert ensure_seal_key(vault_root, "secret") == f"seal key secret/{SEAL_KEY_PATH}: unchanged"
    after = vault_root.secrets.kv.v2.read_secret_version(path=SEAL_KEY_PATH, mount_point="secret", raise_on_deleted_version=True)[
        "data"
    ]
    assert after["metadata"]["version"] == before["metadata"]["version"] and after["data"] == before["data"]
    bot = vault_client(openbao.addr, bot_vault_token)
    sealer = open_sealer(bot, "secret")
    assert sealer is not None and before["data"]["key"] not in repr(sealer)
    with pytest.raises(Forbidden):
        bot.secrets.kv.v2.create_or_update_secret(path=SEAL_KEY_PATH, secret={"key": "00" * 32}, mount_point="secret")


def test_without_the_key_the_bot_runs_unsealed(
    openbao: OpenBaoDevServer, vault_root: hvac.Client, caplog: pytest.LogCaptureFixture
) -> None:
    nobody = vault_root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    with caplog.at_level("WARNING", logger="grants.adapters.seal_key"):
        assert open_sealer(vault_client(openbao.addr, nobody), "secret") is None  # 403: warned, grants looked up
        assert open_sealer(vault_root, "no-such-mount") is None
    # Each warning names both consequences: unsealed credentials, and inbox rows an insider can forge.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all("inbox rows are not authenticated" in w and "look credentials up" in w for w in warnings)


def test_a_proven_revoke_is_one_call_and_an_unproven_one_needs_the_lookup(
    vault_root: hvac.Client, openbao: OpenBaoDevServer, bot_vault_token: str
) -> None:
    vault_root.sys.create_or_update_acl_policy(
        "jitbot-test-revoke-only", 'path "auth/token/revoke-accessor" { capabilities = ["update"] }'
    )
    revoker = vault_root.auth.token.create(policies=["jitbot-test-revoke-only"], no_default_policy=True, ttl="5m")
    only_revoke = VaultTokenKind(vault_client(openbao.addr, revoker["auth"]["client_token"]))
    issuer = VaultTokenKind(vault_client(openbao.addr, bot_vault_token))
    sealed, unsealed = approved("payments-read", timedelta(minutes=10)), approved("payments-read", timedelta(minutes=10))
    first, second = issuer.issue(sealed, PAYMENTS_READ), issuer.issue(unsealed, PAYMENTS_READ)
    token = vault_client(openbao.addr, unwrap(vault_root, str(first.delivery.secret)))

    only_revoke.revoke(first.handle, sealed.request_id, proven=True)  # no lookup-accessor: one call did it
    with pytest.raises(Forbidden):
        token.auth.token.lookup_self()
    only_revoke.revoke(first.handle, sealed.request_id, proven=True)  # already gone counts as success
    with pytest.raises(CredentialError, match="look up"):
        only_revoke.revoke(second.handle, unsealed.request_id)  # unproven: the ownership lookup comes first
    issuer.revoke(second.handle, unsealed.request_id)
