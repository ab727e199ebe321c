"""The OpenSSH key revocation list of early-revoked SSH grants, written atomically for hosts to fetch."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from grants.adapters.kinds.ssh_ca import ssh_keygen
from grants.credentials import CredentialError

_MAGIC = b"SSHKRL\n\0"


def write_krl(path: Path, ca_public_key: str, serials: Iterable[int] = (), key_ids: Iterable[str] = ()) -> None:
    """Write a KRL revoking `serials` (of certificates signed by `ca_public_key`) and `key_ids`, replacing `path` at once.

    Hosts read it with `RevokedKeys`: a half-written file would make sshd refuse every key, hence a temporary file in
    the same folder and an atomic rename.
    """
    write_krl_bytes(path, build_krl(ca_public_key, serials, key_ids))


def write_krl_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with the KRL `data` at once (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=".krl-", delete=False) as out:
        out.write(data)
    os.chmod(out.name, 0o644)  # public data: every host fetches it
    os.replace(out.name, path)


def build_krl(ca_public_key: str, serials: Iterable[int] = (), key_ids: Iterable[str] = (), version: int = 0) -> bytes:
    """The KRL (`ssh-keygen -k`) revoking `serials` of certificates signed by `ca_public_key`, and `key_ids`; its
    version and date are `version` (seconds since the epoch), so the same list is the same bytes on every replica.

    Vault cannot revoke a certificate; this list is how an early revoke stops new logins before its validity ends."""
    ids = sorted(set(key_ids))
    if any("\n" in key_id or not key_id.strip() for key_id in ids):
        raise ValueError("a key ID to revoke must be one non-empty line")
    spec = "".join(f"serial: {serial}\n" for serial in sorted(set(serials)))
    spec += "".join(f"id: {key_id}\n" for key_id in ids)
    with tempfile.TemporaryDirectory(prefix="jitbot-krl-") as folder:
        work = Path(folder)
        (work / "ca.pub").write_text(ca_public_key.strip() + "\n", encoding="utf-8")
        (work / "spec").write_text(spec, encoding="utf-8")
        built = work / "revoked.krl"
        result = subprocess.run(
            [ssh_keygen(), "-k", "-z", str(version), "-f", str(built), "-s", str(work / "ca.pub"), str(work / "spec")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0 or not built.is_file():
            raise CredentialError(f"ssh-keygen could not build the KRL: {result.stderr.strip()[:300]}")
        data = built.read_bytes()
    # PROTOCOL.krl: magic (8 bytes), format version (uint32), KRL version (uint64), then the build time (uint64),
    # which ssh-keygen takes from the clock; sshd never reads it. Pin it, or each replica's bytes differ.
    if data[:8] != _MAGIC:
        raise CredentialError("ssh-keygen built a KRL this bot cannot read")
    return data[:20] + version.to_bytes(8, "big") + data[28:]


def is_revoked(path: Path, certificate_path: Path) -> bool:
    """Whether the KRL at `path` revokes the certificate in `certificate_path` (`ssh-keygen -Q`)."""
    result = subprocess.run(
        [ssh_keygen(), "-Q", "-f", str(path), str(certificate_path)], capture_output=True, text=True, timeout=10
    )
    return result.returncode != 0
