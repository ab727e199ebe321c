"""Wrapping tokens by accessor on a real OpenBao, with the bot's own token: alive until unwrapped, revoked only if one."""

from __future__ import annotations

import hvac
import pytest

from grants.adapters.kinds.wrappings import VaultWrappings
from grants.adapters.vault_client import vault_client
from grants.credentials import CredentialStatus, ForeignCredential


def test_a_wrap_is_alive_until_unwrapped_and_revoking_one_makes_it_unusable(openbao, vault_root, bot_vault_token):
    wrappings = VaultWrappings(vault_client(openbao.addr, bot_vault_token))
    wrapped = vault_root.auth.token.create(policies=["default"], ttl="10m", wrap_ttl="60s")["wrap_info"]
    assert wrappings.status(wrapped["accessor"]) is CredentialStatus.ALIVE
    hvac.Client(url=openbao.addr, token=wrapped["token"]).sys.unwrap()
    assert wrappings.status(wrapped["accessor"]) is CredentialStatus.GONE  # its person has it (even while being revoked)
    wrappings.revoke(wrapped["accessor"])  # gone already: success

    other = vault_root.auth.token.create(policies=["default"], ttl="10m", wrap_ttl="60s")["wrap_info"]
    wrappings.revoke(other["accessor"])
    assert wrappings.status(other["accessor"]) is CredentialStatus.GONE
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=openbao.addr, token=other["token"]).sys.unwrap()


def test_a_wrap_unwrapped_a_moment_ago_is_gone_even_while_vault_still_finds_it(openbao, vault_root, bot_vault_token):
    """Vault revokes a used wrapping token after the request that used it: for a moment it is still found, with
    num_uses -1. Unwrapped is unwrapped: a credential check must never replace what its person already holds."""
    wrappings = VaultWrappings(vault_client(openbao.addr, bot_vault_token))
    for _ in range(100):  # a few of these land in that moment (about 4 % here)
        wrapped = vault_root.auth.token.create(policies=["default"], ttl="10m", wrap_ttl="60s")["wrap_info"]
        hvac.Client(url=openbao.addr, token=wrapped["token"]).sys.unwrap()
        assert wrappings.status(wrapped["accessor"]) is CredentialStatus.GONE


def test_an_accessor_that_is_not_a_wrapping_token_is_never_revoked(openbao, vault_root, bot_vault_token):
    """The accessor comes from a database row: one swapped for someone's real token must not end that token."""
    wrappings = VaultWrappings(vault_client(openbao.addr, bot_vault_token))
    victim = vault_root.auth.token.create(policies=["default"], ttl="10m")["auth"]
    with pytest.raises(ForeignCredential):
        wrappings.revoke(victim["accessor"])
    assert vault_root.auth.token.lookup_accessor(victim["accessor"])["data"]["ttl"] > 0


def test_vault_down_is_unknown_never_gone(bot_vault_token):
    assert VaultWrappings(vault_client("http://127.0.0.1:9", bot_vault_token, timeout=2)).status("x") is CredentialStatus.UNKNOWN


def test_a_token_that_may_not_look_up_accessors_is_unknown_never_gone(openbao, vault_root):
    """A 403 that lasts (a policy without the lookup path) is not the moment of a teardown: it stays unknown."""
    wrapped = vault_root.auth.token.create(policies=["default"], ttl="10m", wrap_ttl="60s")["wrap_info"]
    weak = vault_root.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    assert VaultWrappings(vault_client(openbao.addr, weak)).status(wrapped["accessor"]) is CredentialStatus.UNKNOWN
    assert VaultWrappings(vault_client(openbao.addr, vault_root.token)).status(wrapped["accessor"]) is CredentialStatus.ALIVE
