"""The `pki` kind against a real OpenBao PKI mount and a real mTLS server: sign a CSR, owner check, extend, revoke
(CRL and OCSP at once), status, and what the bot's own token may not do."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hvac.exceptions import Forbidden, InvalidRequest

from devkit.openbao import OpenBaoDevServer
from grants.adapters.kinds.pki_kind import PkiKind
from grants.adapters.vault_client import vault_client
from grants.catalog import load_catalog
from grants.catalog_kinds import PkiScope
from grants.credentials import CredentialError, CredentialStatus, ForeignCredential, IssuedCredential, IssueOrder
from tests.pki_fixtures import MOUNT, ROOT, MtlsServer, client_key, crl_url, make_csr, private_pem, revoked_serials

USER = "U0DEV0001"
NAME = "u0dev0001.jit.internal"
SCOPE = "api-client-cert"


@pytest.fixture
def bot(openbao: OpenBaoDevServer, bot_vault_token: str, pki_ca: str) -> hvac.Client:
    return vault_client(openbao.addr, bot_vault_token)


@pytest.fixture
def scope() -> PkiScope:
    found = load_catalog(ROOT / "vault_policies" / "catalog.toml").scopes[SCOPE]
    assert isinstance(found, PkiScope)
    return found


def order(request_id: str, csr: str, ttl: timedelta = timedelta(minutes=5)) -> IssueOrder:
    now = datetime.now(UTC)
    return IssueOrder(request_id=request_id, scope=SCOPE, requester=USER, ttl=ttl, until=now + ttl, csr=csr)


def ocsp_status(vault_root: hvac.Client, certificate_pem: str, ca_pem: str) -> ocsp.OCSPCertStatus:
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    issuer = x509.load_pem_x509_certificate(ca_pem.encode())
    sha1 = hashes.SHA1()  # noqa: S303 - OCSP names a certificate by SHA-1 hashes of its issuer (RFC 6960)
    body = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, sha1).build().public_bytes(serialization.Encoding.DER)
    asked = urllib.request.Request(
        f"{vault_root.url}/v1/{MOUNT}/ocsp", data=body, headers={"Content-Type": "application/ocsp-request"}
    )
    with urllib.request.urlopen(asked, timeout=10) as answer:
        return ocsp.load_der_ocsp_response(answer.read()).certificate_status


def chain(issued: IssuedCredential) -> str:
    assert issued.delivery.code is not None
    return issued.delivery.code


def test_a_signed_csr_is_accepted_by_a_crl_checking_server_until_revoked(
    bot: hvac.Client, vault_root: hvac.Client, scope: PkiScope, pki_ca: str, mtls_server: MtlsServer
) -> None:
    key = client_key()
    kind = PkiKind(bot)
    issued = kind.issue(order("JIT-PKI1", make_csr(key, NAME)), scope)
    assert issued.handle.kind == "pki" and issued.handle.id.startswith(f"{MOUNT}/")
    serial = issued.facts["serial"]
    assert issued.handle.id == f"{MOUNT}/{serial}" and issued.facts["common_name"] == NAME
    assert "PRIVATE" not in chain(issued) and chain(issued).count("BEGIN CERTIFICATE") == 2  # the cert and its CA
    assert serial in issued.delivery.lines[0] and "UTC" in issued.delivery.lines[0]
    cert = x509.load_pem_x509_certificate(chain(issued).encode())
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert issued.valid_until is not None and issued.valid_until <= datetime.now(UTC) + timedelta(minutes=5, seconds=2)
    assert crl_url(chain(issued)) == mtls_server.crl  # `jitbot vault sync` pointed the certificate at the CRL

    accepted = mtls_server.probe(chain(issued), private_pem(key))
    assert accepted.accepted and accepted.detail == NAME, accepted
    assert kind.status(issued.handle, "JIT-PKI1") is CredentialStatus.ALIVE
    assert ocsp_status(vault_root, chain(issued), pki_ca) is ocsp.OCSPCertStatus.GOOD

    with pytest.raises(ForeignCredential):
        kind.revoke(issued.handle, "JIT-OTHER")  # a rewritten row naming someone else's certificate: never revoked
    assert cert.serial_number not in revoked_serials(mtls_server.crl)

    kind.revoke(issued.handle, "JIT-PKI1")
    assert cert.serial_number in revoked_serials(mtls_server.crl)  # listed the moment revoke returned
    assert ocsp_status(vault_root, chain(issued), pki_ca) is ocsp.OCSPCertStatus.REVOKED
    refused = mtls_server.probe(chain(issued), private_pem(key))
    assert not refused.accepted and "revoked" in refused.detail, refused
    assert kind.status(issued.handle, "JIT-PKI1") is CredentialStatus.GONE
    kind.revoke(issued.handle, "JIT-PKI1")  # already revoked: success


def test_an_extension_signs_a_new_certificate_for_the_rest_and_never_past_it(
    bot: hvac.Client, scope: PkiScope, mtls_server: MtlsServer
) -> None:
    key = client_key()
    kind = PkiKind(bot)
    csr = make_csr(key, NAME)
    first = kind.issue(order("JIT-PKI2", csr, timedelta(minutes=2)), scope)
    longer = order("JIT-PKI2", csr, timedelta(minutes=10))
    second = kind.extend(first.handle, longer, scope)
    assert second.handle != first.handle  # a new certificate: the caller revokes the old one
    assert second.valid_until is not None and second.valid_until <= longer.until + timedelta(seconds=2)
    assert second.valid_until > datetime.now(UTC) + timedelta(minutes=9)
    assert mtls_server.probe(chain(second), private_pem(key)).accepted


def test_the_kind_refuses_csrs_that_are_not_the_scopes(bot: hvac.Client, scope: PkiScope) -> None:
    kind = PkiKind(bot)
    with pytest.raises(CredentialError, match=r"not `u0dev0001\.jit\.internal`"):
        kind.issue(order("JIT-PKI3", make_csr(client_key(), "someone-else.jit.internal")), scope)
    with pytest.raises(CredentialError, match="other names"):
        kind.issue(order("JIT-PKI3", make_csr(client_key(), NAME, x509.DNSName("api.jit.internal"))), scope)
    with pytest.raises(CredentialError, match="RSA key has 2048 bits"):
        kind.issue(order("JIT-PKI3", make_csr(client_key("rsa2048"), NAME)), scope)
    with pytest.raises(CredentialError, match="no CSR"):
        kind.issue(order("JIT-PKI3", ""), scope)


def test_the_bots_token_cannot_widen_a_certificate_or_rewrite_a_role(bot: hvac.Client, vault_root: hvac.Client) -> None:
    csr = make_csr(client_key(), NAME)
    path = f"{MOUNT}/sign/jitbot-{SCOPE}"
    base = {"csr": csr, "common_name": NAME, "ttl": "60s", "serial_number": "JIT-PKI4"}
    for extra in ({"alt_names": "api.jit.internal"}, {"ip_sans": "127.0.0.1"}, {"not_after": "2099-01-01T00:00:00Z"}):
        with pytest.raises(Forbidden):
            bot.write_data(path, data={**base, **extra})
    with pytest.raises(InvalidRequest, match="not allowed by this role"):
        bot.write_data(path, data={**base, "common_name": "*.jit.internal"})
    with pytest.raises(InvalidRequest, match="not allowed by this role"):
        bot.write_data(path, data={**base, "serial_number": "someone"})
    with pytest.raises(Forbidden):
        bot.write_data(f"{MOUNT}/roles/jitbot-{SCOPE}", data={"allow_any_name": True})
    with pytest.raises(Forbidden):
        bot.write_data(f"{MOUNT}/issue/jitbot-{SCOPE}", data={"common_name": NAME})  # Vault would make the key
    role = vault_root.read(f"{MOUNT}/roles/jitbot-{SCOPE}")["data"]
    assert role["server_flag"] is False and role["client_flag"] is True and role["allow_wildcard_certificates"] is False
    assert role["max_ttl"] == 2 * 3600  # the scope's longest total: 1h and one extension of 1h
