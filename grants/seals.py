"""Credential seals: an HMAC over (kind, handle, request ID) that proves, with no Vault call, that a grant's credential
is the one the bot issued for that request; and MACs of other rows the bot wrote (the inbox's recorded work). The key
lives in Vault (read once at start-up), never in the database."""

from __future__ import annotations

import hashlib
import hmac

from grants.credentials import CredentialHandle

_VERSION = "s1"
_MAC = "m1"  # a MAC's first field: no MAC's message is ever a seal's (whose first field is "s1"), whatever the purpose


def _message(parts: tuple[str, ...]) -> bytes:
    # Length-prefixed fields: no tuple of fields can be re-split into another with the same bytes.
    return b"".join(len(part).to_bytes(4, "big") + part for part in (p.encode() for p in parts))


class Sealer:
    """Seals a credential handle to its request, and checks a seal; holds the key in memory only (never printed)."""

    def __init__(self, key: bytes):
        if len(key) < 32:
            raise ValueError("a seal key needs at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"

    def seal(self, handle: CredentialHandle, request_id: str) -> str:
        message = _message((_VERSION, handle.kind, handle.id, request_id))
        return f"{_VERSION}:{hmac.new(self._key, message, hashlib.sha256).hexdigest()}"

    def check(self, handle: CredentialHandle, request_id: str, seal: str) -> bool:
        return hmac.compare_digest(self.seal(handle, request_id), seal)

    def mac(self, purpose: str, *fields: str) -> str:
        """A MAC of `fields` for `purpose` (e.g. "inbox"): domain-separated from seals and from every other purpose."""
        message = _message((_MAC, purpose, *fields))
        return f"{_MAC}:{hmac.new(self._key, message, hashlib.sha256).hexdigest()}"

    def check_mac(self, purpose: str, mac: str | None, *fields: str) -> bool:
        return mac is not None and hmac.compare_digest(self.mac(purpose, *fields), mac)
