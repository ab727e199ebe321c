"""Credential kinds: one adapter per kind, registered here behind the core's CredentialIssuer port."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from grants.adapters.kinds.database_kind import DatabaseKind
from grants.adapters.kinds.identity_kind import VaultIdentityKind
from grants.adapters.kinds.pki_kind import PkiKind
from grants.adapters.kinds.ssh_kind import SshKind
from grants.adapters.kinds.ssh_revocations import SshRevocations
from grants.adapters.kinds.vault_token import Redeemer, VaultTokenKind
from grants.adapters.kinds.wrappings import VaultWrappings
from grants.adapters.vault_client import VaultSession
from grants.credentials import CredentialKinds


def credential_kinds(
    session: VaultSession,
    wrap_ttl: timedelta = timedelta(minutes=5),
    cli: str = "bao",
    *,
    identity_alias_mount: str = "slack",
    ssh: SshRevocations | None = None,
    ssh_krl_copy: Path | None = None,
    gate: Redeemer | None = None,
) -> CredentialKinds:
    """Every kind this bot can issue, on one Vault session; a new kind is one more line here. The ssh kind keeps its
    certificates in the database (`ssh`); without it, it can only sync roles."""
    client = session.client
    return CredentialKinds(
        [
            VaultTokenKind(client, wrap_ttl=wrap_ttl, cli=cli, gate=gate),
            DatabaseKind(client, wrap_ttl=wrap_ttl, cli=cli, gate=gate),
            SshKind(client, ssh, mirror=ssh_krl_copy, gate=gate),
            VaultIdentityKind(client, alias_mount=identity_alias_mount),
            PkiKind(client, gate=gate),
        ],
        healthy=session.healthy,
        wrappings=VaultWrappings(client),
    )
