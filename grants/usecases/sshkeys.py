"""What a person registers once for kinds that certify their own key: an SSH public key, a CSR (validated, audited)."""

from __future__ import annotations

from grants import csr as csrs
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
    deps.keys.set_ssh_key(user, key.openssh, key.fingerprint, now)
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
    text = deps.keys.ssh_key(user)
    return parse_public_key(text) if text else None


def register_csr(deps: Deps, user: str, text: str) -> csrs.Csr:
    """Validate and store `user`'s CSR for pki scopes; a private key is refused (and audited) before anything else,
    and a CSR no pki scope would sign for this person (its names, its key) is refused with what each scope wants."""
    try:
        csr = csrs.parse_csr(text)
    except csrs.PrivateKeyPasted as refusal:
        # Nothing of it is stored or logged; the refusal is audited so security can follow up on the exposure.
        deps.reject(user, "csr", "private_key_pasted", None)
        raise InvalidRequest(str(refusal), field="csr") from None
    except csrs.CsrError as problem:
        raise InvalidRequest(str(problem), field="csr") from None
    wanting = {name: scope.csr_problems(csr, user) for name, scope in sorted(deps.catalog.scopes.items()) if scope.needs_csr}
    if not wanting:
        raise InvalidRequest("No scope in this catalog signs a CSR: there is nothing to register it for.", field="csr")
    if all(wanting.values()):
        why = "; ".join(f"`{name}`: {', '.join(problems)}" for name, problems in wanting.items())
        raise InvalidRequest(f"That CSR cannot be signed for you: {why}. Make a new one with the name shown.", field="csr")
    now = deps.clock.now()
    deps.keys.set_csr(user, csr.pem, csr.fingerprint, now)
    deps.record_trail(
        AuditEvent(
            event=Event.CSR_REGISTERED,
            at=now,
            actor=user,
            subject=user,
            detail={"fingerprint": csr.fingerprint, "key_type": csr.key_type, "bits": csr.bits, "common_name": csr.common_name},
        )
    )
    return csr


def registered_csr(deps: Deps, user: str) -> csrs.Csr | None:
    """The CSR `user` registered, or None."""
    text = deps.keys.csr(user)
    return csrs.parse_csr(text) if text else None
