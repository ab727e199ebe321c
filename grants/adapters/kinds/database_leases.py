"""A database grant's lease: found when the login is issued, and checked to be really gone after a revoke or expiry."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import hvac
from hvac.exceptions import InvalidRequest

from grants.adapters.vault_client import BackendError, describe
from grants.credentials import CredentialError

# Revoking the reader token only marks its lease expired: Vault then revokes the lease (runs the role's revocation
# statements) in the background, and keeps retrying while it cannot reach the database. Until the lease is gone, the
# login and its open sessions work; so a revoke is done only when the lookup says so, else it fails and is retried.
SETTLE = 10.0  # seconds a revoke waits for Vault to finish (the revocation statements wait up to 5 s for sessions)
_POLL = 0.2
_WRAPPING = re.compile(r"h[0-9a-f]{64}")  # a token's lease ID: the salted hash of the token
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def prefix(mount: str, role: str) -> str:
    return f"{mount}/creds/{role}/"


def listed(client: hvac.Client, lease_prefix: str) -> set[str]:
    """The IDs of every login's lease under `lease_prefix` (Vault's LIST sys/leases/lookup needs sudo on that path).
    A response-wrapped read also leaves its wrapping token's own lease there (`h` and a SHA-256, for the wrap TTL):
    not a login, so left out; counted, it made every issue's new lease look ambiguous."""
    answer = client.list(f"sys/leases/lookup/{lease_prefix}")
    keys = ((answer or {}).get("data") or {}).get("keys") or []
    return {lease_prefix + str(key) for key in keys if not str(key).endswith("/") and not _WRAPPING.fullmatch(str(key))}


@contextmanager
def one_read_at_a_time(lease_prefix: str) -> Iterator[None]:
    """Reads of one role's credentials in this process take turns, so the lease listed new after a read is that
    read's. (Another process reading the same role at that moment makes it ambiguous: see `reference`.)"""
    with _locks_guard:
        lock = _locks.setdefault(lease_prefix, threading.Lock())
    with lock:
        yield


def reference(lease_prefix: str, new: set[str]) -> str:
    """What the grant's handle keeps: the one new lease's ID, or, when another read made it ambiguous, the prefix
    alone (then a revoke waits until no lease of the role is still being revoked: later, never wrongly done)."""
    return next(iter(new)) if len(new) == 1 else lease_prefix


def wait_revoked(client: hvac.Client, ref: str, within: float = SETTLE) -> None:
    """Return once Vault has revoked the lease `ref` names; CredentialError (revoke_failed, retried) if it has not
    within `within` seconds. `ref` ending in `/` names every lease of a role: none may be waiting for its revocation."""
    deadline = time.monotonic() + within
    while True:
        pending = _pending(client, ref)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise CredentialError(
                f"Vault has not revoked the database login yet (lease {sorted(pending)[0]}): the login and its sessions "
                "still work. Vault keeps trying while it cannot reach the database; jitbot checks again. If it never "
                f"goes, end it with `bao lease revoke {sorted(pending)[0]}` once the database is reachable"
            )
        time.sleep(_POLL)


def pending(client: hvac.Client, ref: str) -> bool:
    """True while the lease `ref` names still exists (the login still works)."""
    return bool(_pending(client, ref))


def _pending(client: hvac.Client, ref: str) -> set[str]:
    try:
        if not ref.endswith("/"):
            return {ref} if _ttl(client, ref) is not None else set()
        # Ambiguous: every lease of the role whose time is up (revoked, or expired) and that Vault still holds.
        ttls = {lease: _ttl(client, lease) for lease in listed(client, ref)}
        return {lease for lease, ttl in ttls.items() if ttl is not None and ttl <= 0}
    except BackendError as exc:
        raise CredentialError(f"Vault could not say whether database lease {ref} is gone: {describe(exc)}") from None


def _ttl(client: hvac.Client, lease: str) -> int | None:
    """The lease's remaining TTL (zero or less once revoked and waiting for Vault), None when it is gone."""
    try:
        data = client.sys.read_lease(lease_id=lease)["data"]
    except InvalidRequest as exc:
        if "invalid lease" in str(exc):
            return None
        raise
    return int(data.get("ttl") or 0)
