"""The audit anchor on a real OpenBao: KV v2 check-and-set, so a slower leader cannot put an older head back."""

from __future__ import annotations

import hvac
import pytest

from grants.adapters.vault_anchor import VaultAnchor
from grants.adapters.vault_client import vault_client
from grants.audit import AnchorMoved


def test_writes_are_check_and_set_on_the_version_read(openbao, bot_vault_token: str, vault_root: hvac.Client) -> None:
    anchor = VaultAnchor(vault_client(openbao.addr, bot_vault_token), "secret/jitbot/audit-anchor")
    assert anchor.latest() is None
    anchor.write(5, "a" * 64, 0)  # 0: only if none exists yet
    with pytest.raises(AnchorMoved):
        anchor.write(3, "b" * 64, 0)  # a second leader that also saw none
    first = anchor.latest()
    assert first is not None and (first.seq, first.version) == (5, 1)
    anchor.write(9, "c" * 64, first.version)
    with pytest.raises(AnchorMoved):
        anchor.write(7, "d" * 64, first.version)  # the older head, from a leader that read version 1
    latest = anchor.latest()
    assert latest is not None and (latest.seq, latest.hash, latest.version) == (9, "c" * 64, 2)
