"""SSH public keys: a person registers theirs once (validated, fingerprint audited); ssh grants certify it."""

from __future__ import annotations

from grants.domain import AuditEvent, InvalidRequest
from grants.lifecycle import Event
from grants.ssh_keys import PrivateKeyPasted, SshKeyError, SshPublicKey, parse_public_key
from grants.usecases.deps import Deps


def register(deps: Deps, user: str, text: str) -> SshPublicKey:
    """Validate and store `user`'s public key; a private key is refused (and audited) before anything else."""
    try:
        key = parse_public_key(text)
    except PrivateKeyPasted as refusal:
        # Nothing of it is stored or logged; the refusal is audited so security can follow up on the exposure.
        deps.reject(user, "ssh_key", "private_key_pasted", None)
        raise InvalidRequest(str(refusal), field="public_key") from None
    except SshKeyError as problem:
        raise InvalidRequest(str(problem), field="public_key") from None
    now = deps.clock.now()
    deps.store.set_ssh_key(user, key.openssh, key.fingerprint, now)
    deps.record_trail(
        AuditEvent(
            event=Event.SSH_KEY_REGISTERED,
            at=now,
            actor=user,
            subject=user,
            detail={"fingerprint": key.fingerprint, "key_type": key.key_type, "bits": key.bits},
        )
    )
    return key


def registered(deps: Deps, user: str) -> SshPublicKey | None:
    """The key `user` registered, or None."""
    text = deps.store.ssh_key(user)
    return parse_public_key(text) if text else None
