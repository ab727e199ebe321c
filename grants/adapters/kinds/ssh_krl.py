"""The OpenSSH key revocation list of early-revoked SSH grants, written atomically for hosts to fetch."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from grants.adapters.kinds.ssh_ca import ssh_keygen
from grants.credentials import CredentialError


def write_krl(path: Path, ca_public_key: str, serials: Iterable[int] = (), key_ids: Iterable[str] = ()) -> None:
    """Write a KRL revoking `serials` (of certificates signed by `ca_public_key`) and `key_ids`, replacing `path` at once.

    Vault cannot revoke a certificate; this list is how an early revoke stops new logins before the certificate's
    validity ends. Hosts read it with `RevokedKeys`: a half-written file would make sshd refuse every key, hence
    a temporary file in the same folder and an atomic rename.
    """
    ids = sorted(set(key_ids))
    if any("\n" in key_id or not key_id.strip() for key_id in ids):
        raise ValueError("a key ID to revoke must be one non-empty line")
    spec = "".join(f"serial: {serial}\n" for serial in sorted(set(serials)))
    spec += "".join(f"id: {key_id}\n" for key_id in ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".krl-", dir=path.parent) as folder:
        work = Path(folder)
        (work / "ca.pub").write_text(ca_public_key.strip() + "\n", encoding="utf-8")
        (work / "spec").write_text(spec, encoding="utf-8")
        built = work / "revoked.krl"
        result = subprocess.run(
            [ssh_keygen(), "-k", "-f", str(built), "-s", str(work / "ca.pub"), str(work / "spec")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0 or not built.is_file():
            raise CredentialError(f"ssh-keygen could not build the KRL: {result.stderr.strip()[:300]}")
        built.chmod(0o644)  # public data: every host fetches it
        os.replace(built, path)


def is_revoked(path: Path, certificate_path: Path) -> bool:
    """Whether the KRL at `path` revokes the certificate in `certificate_path` (`ssh-keygen -Q`)."""
    result = subprocess.run(
        [ssh_keygen(), "-Q", "-f", str(path), str(certificate_path)], capture_output=True, text=True, timeout=10
    )
    return result.returncode != 0
