"""Pytest fixtures for a real OpenBao: the session's dev server, its root client, the synced policies and the bot's token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from devkit.openbao import OpenBaoDevServer
from grants.adapters.kinds import credential_kinds
from grants.adapters.seal_key import ensure_seal_key
from grants.adapters.vault_client import VaultSession, vault_client
from grants.adapters.vault_sync import sync
from grants.catalog import load_catalog

POLICY_DIR = Path(__file__).resolve().parents[1] / "vault_policies"


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoDevServer]:
    """One OpenBao dev server for the whole session. Do not stop it: tests that need an outage start their own."""
    with OpenBaoDevServer() as server:
        yield server


@pytest.fixture(scope="session")
def vault_root(openbao: OpenBaoDevServer) -> hvac.Client:
    return vault_client(openbao.addr, openbao.root_token)


@pytest.fixture(scope="session")
def vault_synced(vault_root: hvac.Client, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """`jitbot vault sync` of the shipped policies and catalog, as an operator (root) would run it; its report lines."""
    kinds = credential_kinds(VaultSession(vault_root))
    lines = sync(vault_root, POLICY_DIR, load_catalog(POLICY_DIR / "catalog.toml"), kinds)
    return [*lines, ensure_seal_key(vault_root, "secret")]  # what `jitbot vault sync` adds (bot/wiring.py sync_vault)


@pytest.fixture(scope="session")
def bot_vault_token(vault_root: hvac.Client, vault_synced: list[str]) -> str:
    """A token holding the jitbot-bot policy and nothing else (not even `default`), as the bot runs in production."""
    created = vault_root.auth.token.create(
        policies=["jitbot-bot"], no_default_policy=True, ttl="4h", display_name="jitbot-bot", meta={"purpose": "tests"}
    )
    token: str = created["auth"]["client_token"]
    return token
