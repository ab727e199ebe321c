"""CSRs people register for pki scopes: private keys refused first (audited, never kept), weak keys and wrong names
refused with what to do, and the catalog's common-name template never a wildcard."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from grants.catalog import CatalogError, parse_catalog
from grants.catalog_kinds import PkiScope
from grants.csr import CsrError, PrivateKeyPasted, parse_csr
from grants.domain import CsrMissing, InvalidRequest
from tests.catalogs import APPROVER_1, REQUESTER, catalog_data
from tests.fakes import bootstrap
from tests.pki_fixtures import client_key, make_csr, private_pem

NAME = f"{REQUESTER.lower()}.jit.internal"


def pki_catalog(**fields: object):
    data = catalog_data()
    data["scopes"]["api-cert"] = {  # type: ignore[index]
        "description": "A client certificate", "credential": "pki", "common_name": "{user}.jit.internal",
        "requesters": ["*"], "approvers": [APPROVER_1], **fields,
    }  # fmt: skip
    return parse_catalog(data)


@pytest.mark.parametrize(
    "encoding",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.OpenSSH],
)
def test_a_private_key_in_any_format_is_refused_before_anything_else(encoding: serialization.PrivateFormat) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    secret = key.private_bytes(serialization.Encoding.PEM, encoding, serialization.NoEncryption()).decode()
    with pytest.raises(PrivateKeyPasted, match="not stored") as refused:
        parse_csr(make_csr(key, NAME) + secret)  # even beside a good CSR
    assert secret.splitlines()[1] not in str(refused.value)


def test_a_good_csr_is_read_with_its_key_and_names() -> None:
    csr = parse_csr(make_csr(client_key(), NAME, x509.DNSName(NAME)))
    assert (csr.key_type, csr.bits, csr.common_name, csr.dns_names) == ("ec", 256, NAME, (NAME,))
    assert len(csr.fingerprint) == 64 and csr.name_problems(NAME) == []
    assert csr.name_problems("other.jit.internal") == [
        f"its common name is `{NAME}`, not `other.jit.internal`",
        f"it asks for other names ({NAME})",
    ]


def test_weak_damaged_and_odd_csrs_are_refused_with_what_to_do() -> None:
    with pytest.raises(CsrError, match="2048 bits; at least 3072"):
        parse_csr(make_csr(client_key("rsa2048"), NAME))
    with pytest.raises(CsrError, match="BEGIN CERTIFICATE REQUEST"):
        parse_csr("ssh-ed25519 AAAA not a csr")
    good = make_csr(client_key(), NAME)
    with pytest.raises(CsrError, match="damaged"):
        parse_csr(good.replace(good.splitlines()[2], "A" * len(good.splitlines()[2])))
    with pytest.raises(CsrError, match="IP, e-mail or URI"):
        parse_csr(make_csr(client_key(), NAME, x509.RFC822Name("dana@example.com")))
    with pytest.raises(CsrError, match="far too long"):
        parse_csr(good + "x" * 20_000)


def test_the_common_name_template_names_one_person_and_never_a_wildcard() -> None:
    scope = pki_catalog().scopes["api-cert"]
    assert isinstance(scope, PkiScope) and scope.name_for("U0ABC") == "u0abc.jit.internal"
    assert scope.role("api-cert") == "jitbot-api-cert"
    for bad in ("*.jit.internal", "{user}.*.internal", "jit.internal", "{user}", "{user}.{user}.internal", "x.{user}.internal"):
        with pytest.raises(CatalogError, match="never a wildcard"):
            pki_catalog(common_name=bad)
    with pytest.raises(CatalogError, match="pki_role"):
        pki_catalog(pki_role="my-role")  # the bot's policy signs only with jitbot-* roles


def test_registering_a_private_key_is_audited_and_nothing_is_stored() -> None:
    world = bootstrap(pki_catalog())
    secret = private_pem(client_key())
    with pytest.raises(InvalidRequest, match="PRIVATE key"):
        world.service.register_csr(REQUESTER, secret)
    assert world.store.csrs == {}
    assert [(e.event, e.detail.get("rule")) for e in world.store.audit] == [("rejected", "private_key_pasted")]
    assert all(secret.splitlines()[1] not in str(e.detail) for e in world.store.audit)


def test_a_csr_no_scope_would_sign_is_refused_and_a_request_needs_a_fitting_one() -> None:
    world = bootstrap(pki_catalog(key_types=["rsa"]))
    with pytest.raises(CsrMissing, match="none registered"):
        world.service.request(REQUESTER, "api-cert", "10m", "INC-1 call the API")
    with pytest.raises(InvalidRequest, match="this scope takes rsa keys"):
        world.service.register_csr(REQUESTER, make_csr(client_key(), NAME))
    with pytest.raises(InvalidRequest, match=r"not `u0req0001\.jit\.internal`"):
        world.service.register_csr(REQUESTER, make_csr(client_key("rsa"), "someone.jit.internal"))
    registered = world.service.register_csr(REQUESTER, make_csr(client_key("rsa"), NAME))
    assert world.service.csr(REQUESTER) == registered
    assert world.store.audit[-1].event == "csr_registered" and world.store.audit[-1].detail["key_type"] == "rsa"
    created = world.service.request(REQUESTER, "api-cert", "10m", "INC-1 call the API")
    assert created.scope == "api-cert"
