"""A `pki` grant end to end through signed Slack requests on real OpenBao, on SQLite and PostgreSQL: a CSR registered
(a pasted private key refused, never stored or logged), a client certificate a real CRL-checking TLS server accepts
during the grant and refuses after an extension replaced it, after an early revoke and after expiry."""

from __future__ import annotations

import logging
import re

import pytest
from cryptography import x509

from devkit.standin import message_text as shown
from tests.conftest import REQUESTER, World
from tests.pki_fixtures import MtlsServer, client_key, crl_url, make_csr, private_pem, revoked_serials

PLATFORM = "U0APPR005"  # approves api-client-cert (group platform)
NAME = f"{REQUESTER.lower()}.jit.internal"
PEM = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
SERIAL = re.compile(r"Serial ([0-9a-f:]+);")


def ask(world: World, text: str) -> str:
    status, body = world.client.slash(REQUESTER, text)
    assert status == 200 and "Request `JIT-" in body["text"], body
    return str(body["text"].split("`")[1])


def certificate_dm(world: World, rid: str, not_serial: str | None = None) -> tuple[str, str]:
    """The chain (certificate first) and serial of the newest certificate DM for `rid` (other than `not_serial`)."""

    def find() -> tuple[str, str] | None:
        for message in reversed(world.slack.dm_messages(REQUESTER)):
            text = shown(message)
            serial = SERIAL.search(text)
            if rid in text and serial and serial.group(1) != not_serial:
                return "\n".join(PEM.findall(text)) + "\n", serial.group(1)
        return None

    return world.slack.wait_for(find, timeout=20)


def serial_number(chain: str) -> int:
    return x509.load_pem_x509_certificate(chain.encode()).serial_number


def register(world: World, csr: str) -> str:
    status, body = world.client.slash(REQUESTER, f"csr {csr}")
    assert status == 200
    return str(body["text"])


def test_a_client_certificate_works_until_replaced_and_revoked_and_a_private_key_is_never_kept(
    world: World, mtls_server: MtlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, body = world.client.slash(REQUESTER, "api-client-cert 10m INC-20 call the orders API")
    assert "Request `JIT-" in body["text"]  # the catalog allows it: the CSR is looked up after the ack
    refused = world.slack.wait_for(lambda: world.slack.responses_to(world.client.last_response_name))[0]["text"]
    assert "was not made" in refused and "csr" in refused, refused
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 0  # refused before anything was created

    key = client_key()
    secret = private_pem(key)
    told = register(world, secret)
    assert "PRIVATE key" in told and "not stored" in told
    body_of_key = "".join(secret.splitlines()[1:-1])
    assert world.rows("SELECT count(*) FROM csrs")[0][0] == 0
    for table, column in (("audit_events", "detail"), ("outbox", "payload"), ("csrs", "csr")):
        for (value,) in world.rows(f"SELECT {column} FROM {table}"):
            assert body_of_key[:40] not in str(value) and "PRIVATE" not in str(value), table
    assert body_of_key[:40] not in caplog.text and "PRIVATE KEY-----" not in caplog.text  # never logged either
    refused = world.rows("SELECT detail FROM audit_events WHERE event = 'rejected'")
    assert any("private_key_pasted" in row[0] for row in refused)  # audited, so security can follow up

    assert "not `u0dev0001.jit.internal`" in register(world, make_csr(client_key(), "someone-else.jit.internal"))
    assert "2048 bits" in register(world, make_csr(client_key("rsa2048"), NAME))
    assert world.rows("SELECT count(*) FROM csrs")[0][0] == 0
    assert "Registered your CSR" in register(world, make_csr(key, NAME))
    assert NAME in world.client.slash(REQUESTER, "csr")[1]["text"]

    rid = ask(world, "api-client-cert 10m INC-20 call the orders API")
    world.slack.wait_for(lambda: world.slack.find_message(lambda m: rid in shown(m) and "Approve" in shown(m)))
    assert world.client.click(PLATFORM, "approve", rid)[0] == 200
    first, first_serial = certificate_dm(world, rid)
    assert first.count("BEGIN CERTIFICATE") == 2 and crl_url(first) == mtls_server.crl  # the certificate and its chain
    accepted = mtls_server.probe(first, secret)
    assert accepted.accepted and accepted.detail == NAME, accepted
    issued = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'issued'")[0][0]
    assert first_serial in issued and '"kind":"pki"' in issued.replace(" ", "")

    status, body = world.client.slash(REQUESTER, f"extend {rid} 10m")
    assert status == 200, body
    world.wait_audit(rid, "extended")
    second, second_serial = certificate_dm(world, rid, not_serial=first_serial)
    assert serial_number(first) in revoked_serials(mtls_server.crl)  # the replaced certificate is revoked
    assert not mtls_server.probe(first, secret).accepted
    assert mtls_server.probe(second, secret).accepted

    assert world.client.slash(REQUESTER, f"revoke {rid}")[0] == 200
    world.wait_audit(rid, "revoked")
    assert serial_number(second) in revoked_serials(mtls_server.crl)
    refused_after = mtls_server.probe(second, secret)
    assert not refused_after.accepted and "revoked" in refused_after.detail, refused_after
    assert body_of_key[:40] not in caplog.text


def test_a_client_certificate_is_refused_after_the_grant_expires(world: World, mtls_server: MtlsServer) -> None:
    key = client_key()
    assert "Registered your CSR" in register(world, make_csr(key, NAME))
    rid = ask(world, "api-client-cert 10s INC-21 one quick call")
    world.slack.wait_for(lambda: world.slack.find_message(lambda m: rid in shown(m) and "Approve" in shown(m)))
    assert world.client.click(PLATFORM, "approve", rid)[0] == 200
    chain, _ = certificate_dm(world, rid)
    assert mtls_server.probe(chain, private_pem(key)).accepted
    world.wait_audit(rid, "expired", timeout=60)
    assert serial_number(chain) in revoked_serials(mtls_server.crl)  # expiry revokes the serial too
    outcome = mtls_server.probe(chain, private_pem(key))
    assert not outcome.accepted and ("revoked" in outcome.detail or "expired" in outcome.detail), outcome
