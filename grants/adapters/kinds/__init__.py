"""Credential kinds: one adapter per kind, registered here behind the core's CredentialIssuer port."""

from __future__ import annotations

from datetime import timedelta

from grants.adapters.kinds.vault_token import VaultTokenKind
from grants.adapters.vault_client import VaultSession
from grants.credentials import CredentialKinds


def credential_kinds(session: VaultSession, wrap_ttl: timedelta = timedelta(minutes=5), cli: str = "bao") -> CredentialKinds:
    """Every kind this bot can issue, on one Vault session; a new kind is one more line here."""
    return CredentialKinds([VaultTokenKind(session.client, wrap_ttl=wrap_ttl, cli=cli)], healthy=session.healthy)
