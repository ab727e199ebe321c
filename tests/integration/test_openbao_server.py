"""devkit/openbao_server.py: a real non-dev OpenBao (raft storage) keeps the bot's policies, token and seal key
across a restart, as the soak needs; the dev server would come back empty."""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest
from hvac.exceptions import Forbidden

from bench.core import Lab
from devkit.openbao_server import OpenBaoServer
from grants.adapters.seal_key import open_sealer
from grants.adapters.vault_client import vault_client
from grants.credentials import CredentialHandle


@pytest.mark.timeout(180)
def test_a_restart_keeps_the_synced_policies_the_bot_token_and_the_seal_key(tmp_path: Path) -> None:
    lab = Lab(workdir=tmp_path, quick=True, pg=False, persistent_vault=True)
    try:
        server = lab.vault
        assert isinstance(server, OpenBaoServer)
        port, token = server.port, lab.bot_token
        sealer = open_sealer(vault_client(server.addr, token), "secret")
        assert sealer is not None
        handle = CredentialHandle("vault_token", "accessor-1")
        seal = sealer.seal(handle, "r-1")
        root = hvac.Client(url=server.addr, token=server.root_token)
        accessor = root.auth.token.create(policies=["default"], ttl="1h")["auth"]["accessor"]

        server.restart(down=0.5)

        assert server.running and server.port == port
        assert not root.sys.read_seal_status()["sealed"]
        assert "jitbot-bot" in root.sys.list_policies()["data"]["policies"]
        assert root.auth.token.lookup_accessor(accessor)["data"]["ttl"] > 0
        bot = vault_client(server.addr, token)
        assert bot.auth.token.lookup_self()["data"]["policies"] == ["jitbot-bot"]
        again = open_sealer(bot, "secret")
        assert again is not None and again.check(handle, "r-1", seal)  # the same key: seals made before still hold
        with pytest.raises(Forbidden):
            hvac.Client(url=server.addr, token="not-a-token").auth.token.lookup_self()
    finally:
        lab.close()
    assert not server.running
