"""The `pki` kind's Vault side: the per-scope signing role, the mount's CRL/OCSP URLs, signing a CSR, reading a cert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac
from cryptography import x509
from cryptography.x509.oid import NameOID
from hvac.exceptions import InvalidPath

from grants.adapters.vault_client import BackendError, describe
from grants.catalog_kinds import PkiScope
from grants.credentials import CredentialError

# Vault backdates a certificate's start this much, so a relying party whose clock is a little behind accepts it.
BACKDATE = timedelta(seconds=30)


@dataclass(frozen=True)
class SignedCertificate:
    """A client certificate (public) with its chain, serial (Vault's `aa:bb:…` form), names and validity."""

    pem: str
    chain: tuple[str, ...]
    serial: str
    common_name: str
    request_id: str  # the subject's serialNumber attribute: which grant it was signed for
    not_before: datetime
    not_after: datetime


def role_settings(scope: PkiScope) -> dict[str, Any]:
    """The signing role of one scope: it bounds what even a compromised bot could sign with this role."""
    seconds = int(scope.max_total.total_seconds())
    key_type = scope.key_types[0] if len(scope.key_types) == 1 else "any"
    return {
        "key_type": key_type,
        "key_bits": {"ec": 256, "rsa": 3072}.get(key_type, 0),  # minimum sizes; the bot refuses weaker CSRs first
        "allowed_domains": [scope.common_name.removeprefix("{user}.")],
        "allow_subdomains": True,  # `<user>.<domain>`: one label per person under the template's domain
        "allow_bare_domains": False,
        "allow_glob_domains": False,
        "allow_wildcard_certificates": False,  # never a certificate for everyone
        "allow_localhost": False,
        "allow_ip_sans": False,
        "allowed_uri_sans": [],
        "allowed_other_sans": [],
        "allow_any_name": False,
        "enforce_hostnames": True,
        "use_csr_common_name": False,  # the name is the bot's (from the template), never what the CSR says
        "use_csr_sans": False,
        "require_cn": True,
        "server_flag": False,  # client auth only: the certificate cannot impersonate a service
        "client_flag": True,
        "code_signing_flag": False,
        "email_protection_flag": False,
        "key_usage": ["DigitalSignature"],
        "ext_key_usage": [],
        "allowed_serial_numbers": ["JIT-*"],  # the subject names its grant, so a relying party's log does too
        "basic_constraints_valid_for_non_ca": False,
        "no_store": False,  # revocation by serial needs the stored certificate
        "generate_lease": False,
        "not_before_duration": int(BACKDATE.total_seconds()),
        "ttl": seconds,
        "max_ttl": seconds,  # an extension signs again for the rest, up to the scope's longest total
    }


def write_role(client: hvac.Client, mount: str, role: str, scope: PkiScope) -> str:
    """Write (idempotently) the signing role for one scope; the line says what changed."""
    wanted = role_settings(scope)
    path = f"{mount}/roles/{role}"
    try:
        current = _read(client, path)
        data = (current or {}).get("data") or {}
        if current and all(data.get(key) == value for key, value in wanted.items()):
            return f"pki role {mount}/{role}: unchanged"
        client.write_data(path, data=wanted)
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write pki role {mount}/{role}: {describe(exc)}") from None
    state = "created" if current is None else "updated"
    return f"pki role {mount}/{role}: {state} (names {scope.common_name}; client auth only; max TTL {wanted['max_ttl']}s)"


def write_urls(client: hvac.Client, mount: str, base: str) -> str:
    """Point the mount's certificates at its CA, CRL and OCSP responder, so relying parties find revocations."""
    prefix = f"{base.rstrip('/')}/v1/{mount}"
    urls = {
        "issuing_certificates": [f"{prefix}/ca"],
        "crl_distribution_points": [f"{prefix}/crl"],
        "ocsp_servers": [f"{prefix}/ocsp"],
    }
    # Rebuild the CRL on every revoke (not on a timer), so a revoked serial is listed the moment revoke returns; and
    # list a certificate revoked at its grant's end even when its validity ran out a moment before.
    crl = {"disable": False, "auto_rebuild": False, "ocsp_disable": False, "allow_expired_cert_revocation": True}
    try:
        current_urls = ((_read(client, f"{mount}/config/urls") or {}).get("data")) or {}
        current_crl = ((_read(client, f"{mount}/config/crl") or {}).get("data")) or {}
        if all(current_urls.get(k) == v for k, v in urls.items()) and all(current_crl.get(k) == v for k, v in crl.items()):
            return f"pki urls {mount}: unchanged"
        client.write_data(f"{mount}/config/urls", data=urls)
        client.write_data(f"{mount}/config/crl", data=crl)
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot configure the CRL and OCSP URLs of {mount}: {describe(exc)}") from None
    return f"pki urls {mount}: CRL {prefix}/crl, OCSP {prefix}/ocsp (rebuilt on every revoke)"


def sign(
    client: hvac.Client, mount: str, role: str, csr: str, name: str, lifetime: timedelta, request_id: str
) -> SignedCertificate:
    """Sign `csr` for exactly `name`, valid for `lifetime`, with the subject's serialNumber = the request ID."""
    return certificate_of(sign_call(client, mount, role, csr, name, lifetime, request_id), name, request_id)


def sign_call(client: hvac.Client, mount: str, role: str, csr: str, name: str, lifetime: timedelta, request_id: str) -> Any:
    """The one signing call, as Vault answers it (on a vault-enforced scope: pending, a control group's wrap_info)."""
    try:
        return client.write_data(
            f"{mount}/sign/{role}",
            data={
                "csr": csr,
                "common_name": name,
                "ttl": f"{int(lifetime.total_seconds())}s",
                "serial_number": request_id,
                "format": "pem",
                "exclude_cn_from_sans": False,
            },
        )
    except BackendError as exc:
        raise CredentialError(f"Vault refused to sign the CSR for {request_id}: {describe(exc)}") from None


def certificate_of(response: Any, name: str, request_id: str) -> SignedCertificate:
    """The certificate in a signing answer, only if it is exactly what was approved."""
    data = (response or {}).get("data") or {}
    if not data.get("certificate"):
        raise CredentialError(f"Vault answered {request_id} without a certificate; nothing was delivered")
    certificate = inspect(str(data["certificate"]), tuple(str(c) for c in data.get("ca_chain") or [data.get("issuing_ca", "")]))
    if certificate.common_name != name or certificate.request_id != request_id or not _client_auth_only(certificate.pem):
        # Never hand out a certificate that is not exactly what was approved (a misconfigured role could widen it).
        raise CredentialError(f"Vault signed a certificate for {request_id} that is not what was approved; not delivered")
    return certificate


def inspect(pem: str, chain: tuple[str, ...] = ()) -> SignedCertificate:
    """The facts of a PEM certificate, as a relying party reads them."""
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ids = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return SignedCertificate(
        pem=pem.strip(),
        chain=tuple(c.strip() for c in chain if c),
        serial=serial_text(cert.serial_number),
        common_name=str(names[0].value) if names else "",
        request_id=str(ids[0].value) if ids else "",
        not_before=cert.not_valid_before_utc.astimezone(UTC),
        not_after=cert.not_valid_after_utc.astimezone(UTC),
    )


def serial_text(number: int) -> str:
    """Vault's form of a serial: lower-case hex bytes joined by colons."""
    raw = f"{number:x}"
    raw = raw if len(raw) % 2 == 0 else f"0{raw}"
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def read(client: hvac.Client, mount: str, serial: str) -> tuple[SignedCertificate, bool] | None:
    """The stored certificate with this serial and whether it is revoked; None when Vault has none."""
    try:
        found = _read(client, f"{mount}/cert/{serial}")
    except BackendError as exc:
        raise CredentialError(f"cannot read certificate {serial} from {mount}: {describe(exc)}") from None
    data = (found or {}).get("data") or {}
    if not data.get("certificate"):
        return None
    return inspect(str(data["certificate"])), int(data.get("revocation_time") or 0) > 0


def revoke(client: hvac.Client, mount: str, serial: str) -> None:
    """Revoke and make sure it took: OpenBao answers 200 with only a warning when it refuses to list a serial."""
    try:
        response = client.write_data(f"{mount}/revoke", data={"serial_number": serial})
    except BackendError as exc:
        raise CredentialError(f"Vault did not revoke certificate {serial}: {describe(exc)}") from None
    if ((response or {}).get("data") or {}).get("state") != "revoked":
        warnings = "; ".join(str(w)[:200] for w in (response or {}).get("warnings") or []) or "no revocation time"
        raise CredentialError(f"Vault did not list certificate {serial} as revoked ({warnings}); run `jitbot vault sync`")


def _client_auth_only(pem: str) -> bool:
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    try:
        usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return False
    return usages == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]


def _read(client: hvac.Client, path: str) -> Any:
    try:
        return client.read(path)
    except InvalidPath:
        return None
