"""Credential seals: an HMAC over (kind, handle, request ID) that proves, with no Vault call, that a grant's credential
is the one the bot issued for that request. The key lives in Vault (read once at start-up), never in the database."""

from __future__ import annotations

import hashlib
import hmac

from grants.credentials import CredentialHandle

_VERSION = "s1"


class Sealer:
    """Seals a credential handle to its request, and checks a seal; holds the key in memory only (never printed)."""

    def __init__(self, key: bytes):
        if len(key) < 32:
            raise ValueError("a seal key needs at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"

    def seal(self, handle: CredentialHandle, request_id: str) -> str:
        # Length-prefixed fields: no (kind, id, request) triple can be re-split into another with the same bytes.
        message = b"".join(
            len(part).to_bytes(4, "big") + part for part in (p.encode() for p in (_VERSION, handle.kind, handle.id, request_id))
        )
        return f"{_VERSION}:{hmac.new(self._key, message, hashlib.sha256).hexdigest()}"

    def check(self, handle: CredentialHandle, request_id: str, seal: str) -> bool:
        return hmac.compare_digest(self.seal(handle, request_id), seal)
