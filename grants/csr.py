"""Certificate signing requests people register for `pki` scopes: parsing, key strength, names, pasted private keys."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

MIN_RSA_BITS = 3072  # as for SSH keys: 2048-bit RSA is refused so nobody registers a key we must later evict
MIN_EC_BITS = 256
# Markers of private key material in any common format (PEM/PKCS#8/PKCS#1/SEC1/OpenSSH armour, PuTTY's header).
_PRIVATE_MARKERS = ("PRIVATE KEY", "openssh-key-v1", "b3BlbnNzaC1rZXktdjE", "PuTTY-User-Key-File")
_MAX_LENGTH = 16_384  # far above an RSA-8192 CSR; refuses pasted novels before parsing
HOW = "make one with `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr`"


class CsrError(ValueError):
    """A pasted CSR that cannot be registered or signed; the message says what to do instead."""


class PrivateKeyPasted(CsrError):
    """Someone pasted a private key: refused, never stored or logged, and they must make a new one."""


@dataclass(frozen=True)
class Csr:
    """A validated CSR: its PEM (public), key type and size, the names it asks for and its public key's fingerprint."""

    pem: str
    key_type: str  # "ec" | "rsa" | "ed25519"
    bits: int
    common_name: str | None
    dns_names: tuple[str, ...]
    fingerprint: str  # SHA256 of the DER public key, hex

    def name_problems(self, expected: str) -> list[str]:
        """Why this CSR does not name exactly `expected`, or []: its CN and DNS names may only be that name."""
        problems = []
        if self.common_name is not None and self.common_name != expected:
            problems.append(f"its common name is `{self.common_name[:80]}`, not `{expected}`")
        if any(name != expected for name in self.dns_names):
            problems.append(f"it asks for other names ({', '.join(n[:80] for n in self.dns_names if n != expected)})")
        return problems


def parse_csr(text: str) -> Csr:
    """Validate one pasted PEM CSR; raise CsrError (PrivateKeyPasted first of all) saying what is wrong."""
    if any(marker in text for marker in _PRIVATE_MARKERS):
        # Checked first and on the raw text: nothing else is looked at, nothing is stored, logged or sent anywhere.
        raise PrivateKeyPasted(
            "That is a PRIVATE key: it was not stored. Treat it as exposed: make a new key and CSR "
            f"({HOW}) and paste only `client.csr`, which holds no secret."
        )
    if len(text) > _MAX_LENGTH:
        raise CsrError("That is far too long for a certificate signing request: paste the whole `client.csr` file, nothing else.")
    if "-----BEGIN CERTIFICATE REQUEST-----" not in text:
        raise CsrError(f"Paste a PEM certificate signing request (`-----BEGIN CERTIFICATE REQUEST-----` …); {HOW}.")
    try:
        request = x509.load_pem_x509_csr(text.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CsrError("That certificate signing request is damaged: paste the `client.csr` file again, whole.") from None
    if not request.is_signature_valid:
        # A CSR's signature proves its sender holds the private key; one that does not verify proves nothing.
        raise CsrError("That certificate signing request's signature does not verify: make a new one.")
    key = request.public_key()
    key_type, bits = _strength(key)
    public = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    names = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    dns = tuple(san.get_values_for_type(x509.DNSName)) if san is not None else ()
    if san is not None and len(dns) != len(list(san)):
        raise CsrError("That CSR asks for IP, e-mail or URI names; a client certificate here carries one DNS name only.")
    return Csr(
        pem=request.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        key_type=key_type,
        bits=bits,
        common_name=names[0] if names else None,
        dns_names=dns,
        fingerprint=hashlib.sha256(public).hexdigest(),
    )


def _strength(key: object) -> tuple[str, int]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise CsrError(f"That CSR's EC key has {key.curve.key_size} bits; use P-256 or P-384 ({HOW}).")
        return "ec", key.curve.key_size
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrError(f"That CSR's RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required ({HOW}).")
        return "rsa", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    raise CsrError(f"That CSR's key type is not accepted; use an EC (P-256, P-384) or RSA key ({HOW}).")
