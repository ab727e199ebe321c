"""The audit anchor on a real OpenBao: KV v2 check-and-set, so a slower worker cannot put an older head back."""

from __future__ import annotations

import hvac
import pytest

from grants.adapters.vault_anchor import VaultAnchor, check_anchor
from grants.adapters.vault_client import vault_client
from grants.audit import AnchorMoved


def test_writes_are_check_and_set_on_the_version_read(openbao, bot_vault_token: str, vault_root: hvac.Client) -> None:
    anchor = VaultAnchor(vault_client(openbao.addr, bot_vault_token), "secret/jitbot/audit-anchor")
    assert anchor.latest() is None
    anchor.write(5, "a" * 64, 0)  # 0: only if none exists yet
    with pytest.raises(AnchorMoved):
        anchor.write(3, "b" * 64, 0)  # a second worker that also saw none
    first = anchor.latest()
    assert first is not None and (first.seq, first.version) == (5, 1)
    anchor.write(9, "c" * 64, first.version)
    with pytest.raises(AnchorMoved):
        anchor.write(7, "d" * 64, first.version)  # the older head, from a worker that read version 1
    latest = anchor.latest()
    assert latest is not None and (latest.seq, latest.hash, latest.version) == (9, "c" * 64, 2)


def test_vault_sync_checks_the_anchor_mount_is_kv2_and_the_bots_policy_may_write_it(
    vault_root: hvac.Client, vault_synced: list[str]
) -> None:
    assert check_anchor(vault_root, "secret/jitbot/audit-anchor") == [
        "audit anchor secret/jitbot/audit-anchor (JITBOT_AUDIT_ANCHOR): KV v2, writable by jitbot-bot"
    ]
    (unwritable,) = check_anchor(vault_root, "secret/jitbot/elsewhere")  # the policy covers one path only
    assert unwritable.startswith("error:") and "may not write secret/data/jitbot/elsewhere" in unwritable, unwritable
    try:
        vault_root.sys.enable_secrets_engine("kv", path="anchor-kv1", options={"version": "1"})
    except hvac.exceptions.InvalidRequest:
        pass  # enabled by an earlier run against this server
    (version_1,) = check_anchor(vault_root, "anchor-kv1/jitbot/audit-anchor")
    assert version_1.startswith("error:") and "not KV version 2" in version_1, version_1
    (missing,) = check_anchor(vault_root, "no-such-mount/jitbot/audit-anchor")
    assert missing.startswith("error:") and "bao secrets enable -path=no-such-mount kv-v2" in missing, missing
    # The throwaway tokens the check asked with are gone.
    accessors = vault_root.list("auth/token/accessors")["data"]["keys"]
    names = [vault_root.auth.token.lookup_accessor(a)["data"]["display_name"] for a in accessors]
    assert "token-jitbot-sync-check" not in names
