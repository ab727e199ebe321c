"""The `ssh` kind's Vault side: the per-scope signer role, signing a person's public key, reading the CA key."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
from hvac.exceptions import InvalidPath

from grants.adapters.vault_client import BackendError, describe
from grants.credentials import CredentialError
from grants.ssh_keys import parse_public_key, principal_problems

DEFAULT_MOUNT = "ssh-client-signer"
KEY_ID_FORMAT = "jitbot-{{role_name}}-{{public_key_hash}}"  # OpenBao's public_key_hash: the SHA-256 fingerprint, hex


def pinned_key_id(role: str, fingerprint: str) -> str:
    """The key ID the signer role writes (KEY_ID_FORMAT) for a key with this `SHA256:` fingerprint."""
    digest = base64.b64decode(fingerprint.removeprefix("SHA256:") + "=" * (-len(fingerprint) % 4))
    return f"jitbot-{role}-{digest.hex()}"


@dataclass(frozen=True)
class SignedCertificate:
    """A user certificate: its one-line text (public, safe to DM), serial (for the KRL), key ID and end of validity."""

    text: str
    serial: int
    key_id: str
    principals: tuple[str, ...]
    valid_before: datetime


def ssh_role_settings(principals: list[str], max_total: timedelta) -> dict[str, Any]:
    """The signer role of one scope: it bounds what even a compromised bot could sign with this role."""
    problems = principal_problems(principals)
    if problems:
        raise CredentialError("; ".join(problems))
    seconds = int(max_total.total_seconds())
    return {
        "key_type": "ca",
        "allow_user_certificates": True,
        "allow_host_certificates": False,
        "allowed_users": ",".join(principals),  # exactly the scope's principals; no template, no glob
        "allowed_users_template": False,
        "default_user": "",  # never a principal that was not asked for
        "allow_empty_principals": False,  # OpenBao: an empty principal list would be valid for every user
        # The key ID is the role's, not the bot's: a holder of the bot's token cannot name another grant in a
        # certificate (sshd logs the key ID). It names the scope's role and the key; the serial, also logged, is
        # the grant's (ssh_certificates.request_id and the `issued` event).
        "allow_user_key_ids": False,
        "key_id_format": KEY_ID_FORMAT,
        "allowed_extensions": "permit-pty",
        "default_extensions": {"permit-pty": ""},  # no agent/port/X11 forwarding: a terminal, nothing more
        "allowed_critical_options": "",
        "ttl": seconds,
        "max_ttl": seconds,  # an extension signs again for the rest, up to the scope's longest total
    }


def write_ssh_role(
    client: hvac.Client, role: str, principals: list[str], max_total: timedelta, mount: str = DEFAULT_MOUNT
) -> str:
    """Write (idempotently) the signer role for one scope; the line says what changed."""
    wanted = ssh_role_settings(principals, max_total)
    path = f"{mount}/roles/{role}"
    try:
        try:
            current = client.read(path)
        except InvalidPath:
            current = None
        data = (current or {}).get("data") or {}
        if current and all(_same(data.get(key), value) for key, value in wanted.items()):
            return f"ssh role {mount}/{role}: unchanged"
        client.write_data(path, data=wanted)
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write ssh role {mount}/{role}: {describe(exc)}") from None
    return f"ssh role {mount}/{role}: {'created' if current is None else 'updated'} (principals {', '.join(principals)}; max TTL {wanted['max_ttl']}s)"


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and isinstance(current, list):
        return ",".join(current) == wanted
    return bool(current == wanted)


def ca_public_key(client: hvac.Client, mount: str = DEFAULT_MOUNT) -> str:
    """The CA's public key, as hosts trust it (`TrustedUserCAKeys`) and as the KRL is signed against."""
    try:
        response = client.read(f"{mount}/config/ca")
    except BackendError as exc:
        raise CredentialError(f"cannot read the SSH CA public key at {mount}: {describe(exc)}") from None
    key = ((response or {}).get("data") or {}).get("public_key")
    if not key:
        raise CredentialError(f"the SSH mount {mount} has no CA key; an operator must configure {mount}/config/ca")
    return str(key).strip()


def sign_certificate(
    client: hvac.Client,
    role: str,
    public_key: str,
    principals: list[str],
    lifetime: timedelta,
    request_id: str,
    mount: str = DEFAULT_MOUNT,
) -> SignedCertificate:
    """Sign `public_key` for exactly `principals`, valid for `lifetime`; the role sets the key ID (`pinned_key_id`)."""
    response = sign_call(client, role, public_key, principals, lifetime, request_id, mount)
    return certificate_from(response, role, public_key, principals, request_id, mount)


def sign_call(
    client: hvac.Client, role: str, public_key: str, principals: list[str], lifetime: timedelta, request_id: str, mount: str
) -> Any:
    """The one signing call, as Vault answers it (on a vault-enforced scope: pending, a control group's wrap_info)."""
    problems = principal_problems(principals)
    if problems:
        raise CredentialError("; ".join(problems))
    try:
        return client.write_data(
            f"{mount}/sign/{role}",
            data={
                "public_key": public_key,
                "cert_type": "user",
                "valid_principals": ",".join(principals),
                "ttl": f"{int(lifetime.total_seconds())}s",
            },
        )
    except BackendError as exc:
        raise CredentialError(f"Vault refused to sign the SSH key for {request_id}: {describe(exc)}") from None


def certificate_from(
    response: Any, role: str, public_key: str, principals: list[str], request_id: str, mount: str
) -> SignedCertificate:
    """The certificate in a signing answer, only if it is exactly what was approved."""
    text = str(((response or {}).get("data") or {}).get("signed_key", "")).strip()
    if not text:
        raise CredentialError(f"Vault answered {request_id} without a certificate; nothing was delivered")
    certificate = inspect_certificate(text)
    if set(certificate.principals) != set(principals):
        # Never hand out a certificate that is not exactly what was approved (a misconfigured role could widen it).
        raise CredentialError(f"Vault signed a certificate for {request_id} that is not what was approved; not delivered")
    if certificate.key_id != pinned_key_id(role, fingerprint(public_key)):
        raise CredentialError(
            f"the signer role {mount}/{role} does not pin the key ID (set by an older `jitbot vault sync`); "
            f"run `jitbot vault sync`, then ask again. {request_id}'s certificate was not delivered"
        )
    return certificate


def fingerprint(public_key: str) -> str:
    try:
        return parse_public_key(public_key).fingerprint
    except ValueError as error:
        raise CredentialError(str(error)) from None


def ssh_keygen() -> str:
    """The `ssh-keygen` binary (OpenSSH's client package)."""
    found = shutil.which("ssh-keygen")
    if found is None:
        raise CredentialError("`ssh-keygen` is not installed (Debian: apt-get install openssh-client)")
    return found


def inspect_certificate(text: str) -> SignedCertificate:
    """Serial, key ID, principals and end of validity as `ssh-keygen -L` reads them from the certificate."""
    with tempfile.TemporaryDirectory(prefix="jitbot-cert-") as folder:
        path = Path(folder) / "cert.pub"
        path.write_text(text + "\n", encoding="utf-8")
        # ssh-keygen prints validity in local time without a zone: make that UTC.
        shown = subprocess.run(
            [ssh_keygen(), "-L", "-f", str(path)], capture_output=True, text=True, timeout=10, env={"TZ": "UTC"}
        )
    if shown.returncode != 0:
        raise CredentialError(f"the certificate cannot be read by ssh-keygen: {shown.stderr.strip()[:200]}")
    serial, key_id, valid_before = None, None, None
    principals: list[str] = []
    lines = shown.stdout.splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("Serial:"):
            serial = int(stripped.split(":", 1)[1])
        elif stripped.startswith("Key ID:"):
            key_id = stripped.split(":", 1)[1].strip().strip('"')
        elif stripped.startswith("Valid:") and " to " in stripped:
            valid_before = stripped.rsplit(" to ", 1)[1]
        elif stripped == "Principals:":
            for following in lines[index + 1 :]:
                if not following.startswith(" " * 16):
                    break
                principals.append(following.strip())
    if serial is None or key_id is None or valid_before is None:
        raise CredentialError("the certificate lacks a serial, key ID or validity")
    return SignedCertificate(
        text=text,
        serial=serial,
        key_id=key_id,
        principals=tuple(principals),
        valid_before=datetime.fromisoformat(valid_before).replace(tzinfo=UTC),
    )
