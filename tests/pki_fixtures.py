"""A real OpenBao PKI mount for tests (what an operator sets up once), client keys and CSRs, and a real mTLS server."""

from __future__ import annotations

import datetime as dt
import queue
import socket
import ssl
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hvac.exceptions import InvalidRequest

from grants.adapters.kinds.pki_kind import PkiKind
from grants.catalog import load_catalog

MOUNT = "pki"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pki_ca(vault_root: hvac.Client) -> str:
    """OpenBao's PKI mount with an EC root CA, and what `jitbot vault sync` writes for the shipped catalog's pki
    scopes (roles, CRL and OCSP URLs); the CA certificate (PEM)."""
    try:
        vault_root.sys.enable_secrets_engine("pki", path=MOUNT, config={"max_lease_ttl": "87600h"})
        vault_root.write_data(
            f"{MOUNT}/root/generate/internal", data={"common_name": "jit test root", "ttl": "87600h", "key_type": "ec"}
        )
    except InvalidRequest:
        pass  # already set up by another test module in this session
    PkiKind(vault_root).sync(load_catalog(ROOT / "vault_policies" / "catalog.toml"))
    return str(vault_root.read(f"{MOUNT}/cert/ca")["data"]["certificate"])


def client_key(kind: str = "ec") -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    return (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ec"
        else rsa.generate_private_key(65537, 2048 if kind == "rsa2048" else 3072)
    )


def make_csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, name: str | None, *sans: x509.GeneralName) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)] if name else [])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode("ascii")


def private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def crl_url(certificate_pem: str) -> str:
    """The CRL distribution point `jitbot vault sync` configured, as a relying party reads it off the certificate."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return str(points[0].full_name[0].value)  # type: ignore[index]


def revoked_serials(url: str) -> set[int]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        crl = x509.load_der_x509_crl(answer.read())
    return {entry.serial_number for entry in crl}


@dataclass
class Outcome:
    accepted: bool
    detail: str  # the client certificate's CN when accepted, OpenSSL's reason when refused


class MtlsServer:
    """A TLS server that requires a client certificate from the test CA and checks the leaf against the CRL, which it
    fetches from OpenBao for every connection (as a relying party that refreshes its CRL)."""

    def __init__(self, ca_pem: str, crl: str, folder: Path):
        self.ca_pem, self.crl, self.folder = ca_pem, crl, folder
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.jit.internal")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1)).sign(key, hashes.SHA256())
        )  # fmt: skip
        self.cert_file, self.key_file = folder / "server.crt", folder / "server.key"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_text(private_pem(key))
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        context.load_verify_locations(cadata=self.ca_pem)
        with urllib.request.urlopen(self.crl, timeout=10) as answer:
            crl = x509.load_der_x509_crl(answer.read()).public_bytes(serialization.Encoding.PEM)
        with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".crl.pem") as file:
            file.write(crl)
            file.flush()
            context.load_verify_locations(cafile=file.name)  # OpenSSL reads the CRL from a file
        return context

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            with raw:
                raw.settimeout(10)
                try:
                    with self._context().wrap_socket(raw, server_side=True) as tls:
                        peer = tls.getpeercert() or {}
                        subject = dict(item[0] for item in peer.get("subject", ()))
                        tls.sendall(b"hello\n")
                        self.outcomes.put(Outcome(True, str(subject.get("commonName", ""))))
                except (ssl.SSLError, OSError) as error:
                    self.outcomes.put(Outcome(False, getattr(error, "verify_message", "") or str(error)))

    def probe(self, chain_pem: str, key_pem: str) -> Outcome:
        """Connect with this client certificate and key; what the server decided."""
        with tempfile.TemporaryDirectory(dir=self.folder) as folder:
            chain, key = Path(folder) / "client.crt", Path(folder) / "client.key"
            chain.write_text(chain_pem)
            key.write_text(key_pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the server's identity is not under test
            context.load_cert_chain(chain, key)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw, context.wrap_socket(raw) as tls:
                    tls.recv(16)
            except (ssl.SSLError, OSError):
                pass  # the server's side says why
        return self.outcomes.get(timeout=15)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def mtls_server(pki_ca: str, vault_root: hvac.Client, tmp_path: Path) -> Iterator[MtlsServer]:
    server = MtlsServer(pki_ca, f"{vault_root.url}/v1/{MOUNT}/crl", tmp_path)
    yield server
    server.close()
