"""SSH public keys people register: validation, the refusal of pasted private keys, and ssh-keygen's SHA256 fingerprint."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

MIN_RSA_BITS = 3072  # NIST/BSI guidance past 2030; 2048-bit RSA is refused so nobody registers a key we must later evict
_CURVES = {
    "ecdsa-sha2-nistp256": "nistp256",
    "ecdsa-sha2-nistp384": "nistp384",
    "ecdsa-sha2-nistp521": "nistp521",
}
ALLOWED_TYPES = ("ssh-ed25519", *_CURVES, "ssh-rsa")
# Markers of private key material in any common format: PEM/PKCS#8/OpenSSH armour, the raw OpenSSH magic and its
# base64 (a key pasted without its armour lines), PuTTY's .ppk header.
_PRIVATE_MARKERS = ("PRIVATE KEY", "openssh-key-v1", "b3BlbnNzaC1rZXktdjE", "PuTTY-User-Key-File")
_MAX_LENGTH = 16_384  # far above any RSA-16384 public key line; refuses pasted novels before decoding


class SshKeyError(ValueError):
    """A pasted key that cannot be registered; the message says what to do instead."""


class PrivateKeyPasted(SshKeyError):
    """Someone pasted a private key: refused, and they must rotate it (it has been seen by Slack)."""


@dataclass(frozen=True)
class SshPublicKey:
    """A validated public key: its type, wire blob (base64), size and fingerprint; the comment is dropped."""

    key_type: str
    blob_b64: str
    bits: int
    fingerprint: str

    @property
    def openssh(self) -> str:
        """The one-line `authorized_keys` form Vault signs (without the comment, which nobody needs)."""
        return f"{self.key_type} {self.blob_b64}"


def fingerprint(blob: bytes) -> str:
    """`SHA256:<base64 without padding>`, exactly as `ssh-keygen -l` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def parse_public_key(text: str) -> SshPublicKey:
    """Validate one pasted public key line (`type base64 [comment]`); raise SshKeyError saying what is wrong."""
    if any(marker in text for marker in _PRIVATE_MARKERS):
        # Checked first and on the raw text: nothing else is looked at, nothing is stored or sent anywhere.
        raise PrivateKeyPasted(
            "That is a PRIVATE key: it was not stored. Treat it as exposed: rotate it now (make a new key pair with "
            "`ssh-keygen -t ed25519`, remove the old public key wherever it is authorized) and register the new "
            "`.pub` file's one line instead."
        )
    if len(text) > _MAX_LENGTH:
        raise SshKeyError("That is far too long for an SSH public key: paste the one line of your `.pub` file.")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise SshKeyError("Paste exactly one line: the contents of your `.pub` file (e.g. `~/.ssh/id_ed25519.pub`).")
    fields = lines[0].split()
    if len(fields) < 2:
        raise SshKeyError("A public key line looks like `ssh-ed25519 AAAA… comment`: paste your `.pub` file's line.")
    key_type, encoded = fields[0], fields[1]
    if key_type not in ALLOWED_TYPES:
        raise SshKeyError(
            f"Key type `{key_type[:40]}` is not accepted. Use ssh-ed25519 (recommended), ecdsa-sha2-nistp256/384/521 "
            f"or ssh-rsa with at least {MIN_RSA_BITS} bits."
        )
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SshKeyError("The key's base64 part is damaged: copy the `.pub` file's line again, whole.") from None
    fields_in_blob = _read_strings(blob)
    if not fields_in_blob or fields_in_blob[0] != key_type.encode():
        raise SshKeyError(f"The key data does not match its type `{key_type}`: copy the `.pub` file's line again.")
    bits = _key_bits(key_type, fields_in_blob[1:])
    return SshPublicKey(key_type=key_type, blob_b64=encoded, bits=bits, fingerprint=fingerprint(blob))


def _key_bits(key_type: str, parts: list[bytes]) -> int:
    if key_type == "ssh-ed25519":
        if len(parts) != 1 or len(parts[0]) != 32:
            raise SshKeyError("This ssh-ed25519 key is malformed: copy the `.pub` file's line again.")
        return 256
    if key_type in _CURVES:
        if len(parts) != 2 or parts[0] != _CURVES[key_type].encode() or not parts[1].startswith(b"\x04"):
            raise SshKeyError(f"This {key_type} key is malformed: copy the `.pub` file's line again.")
        return int(key_type[-3:])
    if len(parts) != 2:  # ssh-rsa: e, n
        raise SshKeyError("This ssh-rsa key is malformed: copy the `.pub` file's line again.")
    bits = int.from_bytes(parts[1], "big").bit_length()
    if bits < MIN_RSA_BITS:
        raise SshKeyError(
            f"This RSA key has {bits} bits; at least {MIN_RSA_BITS} are required. Make a new key with "
            "`ssh-keygen -t ed25519` (or `-t rsa -b 4096`) and register its `.pub` line."
        )
    return bits


def _read_strings(blob: bytes) -> list[bytes]:
    """The SSH wire format's length-prefixed strings; [] when the blob is not exactly a sequence of them."""
    parts: list[bytes] = []
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            return []
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        offset += 4
        if offset + length > len(blob):
            return []
        parts.append(blob[offset : offset + length])
        offset += length
    return parts


FORBIDDEN_PRINCIPALS = frozenset({"root", "*"})


def principal_problems(principals: list[str] | tuple[str, ...]) -> list[str]:
    """Why a scope's principals cannot be signed, or []: never empty, never root, never a wildcard."""
    problems = []
    if not principals:
        # Vault would fall back to the role's default user: a certificate must name exactly what was approved.
        problems.append("an ssh scope needs at least one principal")
    for principal in principals:
        if principal in FORBIDDEN_PRINCIPALS or "*" in principal or "," in principal or not principal.strip():
            # root is break-everything, a wildcard is every account, a comma would smuggle a second principal.
            problems.append(f"principal `{principal}` is not allowed (never root, never a wildcard, no commas)")
    return problems
