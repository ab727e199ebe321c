"""Response-wrapping tokens by accessor: still unwrappable (nobody has it yet), or gone; and revoking one."""

from __future__ import annotations

import time

import hvac
from hvac.exceptions import Forbidden, InvalidRequest

from grants.adapters.kinds.vault_token import TOKEN_GONE
from grants.adapters.vault_client import BackendError, describe, vault_errors
from grants.credentials import CredentialError, CredentialStatus, ForeignCredential

WRAPPING_POLICY = "response-wrapping"  # the one policy Vault gives every wrapping token
_TEARDOWN_RETRIES = (0.05, 0.2, 0.5)  # seconds between lookups while Vault tears a used wrapping token down


class VaultWrappings:
    """`auth/token/lookup-accessor` and `revoke-accessor` (the bot's policy has both for its grants already): a wrapping
    token is a single-use token, so once unwrapped its accessor is gone."""

    def __init__(self, client: hvac.Client):
        self._client = client

    def _lookup(self, accessor: str) -> dict[str, object] | None:
        # While Vault tears a just-used wrapping token down, a lookup of its accessor can answer 403 (measured: 2 in
        # 1,000 under load, even for root); a policy that really lacks the path keeps answering 403, which stays
        # an error (unknown, never gone: an unknown wrap is never replaced).
        for pause in (*_TEARDOWN_RETRIES, None):
            try:
                return self._lookup_once(accessor)
            except Forbidden as exc:
                if pause is None:
                    raise CredentialError(f"Vault refused to look up wrapping accessor {accessor}: {describe(exc)}") from None
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _lookup_once(self, accessor: str) -> dict[str, object] | None:
        try:
            return dict(self._client.auth.token.lookup_accessor(accessor)["data"])
        except Forbidden:
            raise
        except InvalidRequest as exc:
            if any(marker in vault_errors(exc).lower() for marker in TOKEN_GONE):
                return None
            raise CredentialError(f"Vault refused to look up wrapping accessor {accessor}: {describe(exc)}") from None
        except BackendError as exc:
            raise CredentialError(f"Vault could not look up wrapping accessor {accessor}: {describe(exc)}") from None

    def status(self, accessor: str) -> CredentialStatus:
        try:
            found = self._lookup(accessor)
        except CredentialError:
            return CredentialStatus.UNKNOWN
        # Right after its one use, Vault still finds a wrapping token for a moment, marked num_uses -1 (being revoked).
        return CredentialStatus.GONE if found is None or found.get("num_uses") == -1 else CredentialStatus.ALIVE

    def revoke(self, accessor: str) -> None:
        found = self._lookup(accessor)
        if found is None or found.get("num_uses") == -1:
            return
        # The accessor comes from a database row: only ever revoke a wrapping token by it, never a token someone
        # swapped in (the bot's policy could revoke any token by accessor).
        if found.get("policies") != [WRAPPING_POLICY]:
            raise ForeignCredential(f"accessor {accessor} is not a response-wrapping token; not revoked")
        try:
            self._client.auth.token.revoke_accessor(accessor)
        except InvalidRequest as exc:
            if any(marker in vault_errors(exc).lower() for marker in TOKEN_GONE):
                return
            raise CredentialError(f"Vault refused to revoke wrapping accessor {accessor}: {describe(exc)}") from None
        except BackendError as exc:
            raise CredentialError(f"Vault could not revoke wrapping accessor {accessor}: {describe(exc)}") from None
