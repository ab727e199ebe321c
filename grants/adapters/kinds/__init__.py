"""Credential kinds: one adapter per kind, registered here behind the core's CredentialIssuer port."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from grants.adapters.kinds.database_kind import DatabaseKind
from grants.adapters.kinds.identity_kind import VaultIdentityKind
from grants.adapters.kinds.ssh_kind import SshKind
from grants.adapters.kinds.vault_token import VaultTokenKind
from grants.adapters.vault_client import VaultSession
from grants.credentials import CredentialKinds


def credential_kinds(
    session: VaultSession,
    wrap_ttl: timedelta = timedelta(minutes=5),
    cli: str = "bao",
    *,
    identity_alias_mount: str = "slack",
    ssh_krl_path: Path = Path("jitbot-ssh/revoked.krl"),
) -> CredentialKinds:
    """Every kind this bot can issue, on one Vault session; a new kind is one more line here."""
    client = session.client
    return CredentialKinds(
        [
            VaultTokenKind(client, wrap_ttl=wrap_ttl, cli=cli),
            DatabaseKind(client, wrap_ttl=wrap_ttl, cli=cli),
            SshKind(client, ssh_krl_path),
            VaultIdentityKind(client, alias_mount=identity_alias_mount),
        ],
        healthy=session.healthy,
    )
