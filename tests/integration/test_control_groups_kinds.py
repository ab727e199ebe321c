"""approval = "vault" on pki and ssh scopes, on real OpenBao and both databases: the signing call is held by a control
group from the request on; the bot's token gets no certificate; two approvers' own identities release exactly one,
for the requester's own CSR or public key; a second release fails."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from cryptography import x509

from bot.wiring import migrate_engine
from devkit.openbao import OpenBaoDevServer
from grants.adapters.control_groups import ControlGroupHolds, VaultControlGroups
from grants.adapters.kinds import credential_kinds
from grants.adapters.kinds.ssh_revocations import SshRevocations
from grants.adapters.sql_store import SqlStore, make_engine
from grants.adapters.vault_client import VaultSession, vault_client
from grants.catalog import load_catalog
from grants.credentials import CredentialError
from grants.domain import State
from grants.service import ElevationService
from grants.signin import SignIn
from tests.fakes import FakeClock, FakeNotifier, FakeTimer
from tests.pki_fixtures import client_key, make_csr
from tests.ssh_fixtures import new_key
from tests.vault_approval import APPROVER_1, APPROVER_2, REQUESTER, VaultApprovals, catalog_dir, start

CERT = "vaulted-cert"
NAME = f"{REQUESTER.lower()}.jit.internal"
CERT_TOML = f"""
[scopes.{CERT}]
description = "A client certificate, approved in Vault"
credential = "pki"
common_name = "{{user}}.jit.internal"
min_duration = "10s"
max_duration = "1h"
requesters = ["{REQUESTER}"]
approvers = ["{APPROVER_1}", "{APPROVER_2}"]
approvals_required = 2
approval = "vault"

[scopes.vaulted-ssh]
description = "SSH as web-admin, approved in Vault"
credential = "ssh"
ssh_role = "jit-vaulted-ssh"
principals = ["web-admin"]
min_duration = "10s"
max_duration = "30m"
requesters = ["{REQUESTER}"]
approvers = ["{APPROVER_1}", "{APPROVER_2}"]
approvals_required = 2
approval = "vault"
"""


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VaultApprovals, Path]]:
    with OpenBaoDevServer() as server:
        world = start(server)
        world.root.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
        world.root.write_data(
            "pki/root/generate/internal", data={"common_name": "jit test root", "ttl": "87600h", "key_type": "ec"}
        )
        world.root.sys.enable_secrets_engine("ssh", path="ssh-client-signer")
        world.root.write_data("ssh-client-signer/config/ca", data={"generate_signing_key": True, "key_type": "ssh-ed25519"})
        for person in (APPROVER_1, APPROVER_2, REQUESTER):
            world.link(person)
        policies = catalog_dir(tmp_path_factory.mktemp("cg-pki"), extra=CERT_TOML)
        _, lines = world.sync(policies)
        assert not [line for line in lines if line.startswith("error") and "vaulted" in line], lines
        yield world, policies


class Delivered(FakeNotifier):
    certificates: dict[str, str]

    def deliver_credential(self, request, credential):  # type: ignore[no-untyped-def]
        super().deliver_credential(request, credential)
        self.certificates[request.id] = str(credential.delivery.code)


@pytest.fixture
def bot(vault: tuple[VaultApprovals, Path], db_url: str) -> Iterator[tuple[ElevationService, Delivered, str]]:
    world, policies = vault
    token = world.bot_token()
    engine = make_engine(db_url)
    migrate_engine(engine)
    store = SqlStore(engine)
    session = VaultSession(vault_client(world.addr, token))
    kinds = credential_kinds(session, gate=ControlGroupHolds(session.client, alias_mount="slack"), ssh=SshRevocations(store))
    gates = VaultControlGroups(session.client, kinds, alias_mount="slack")
    notifier = Delivered()
    notifier.certificates = {}
    clock = FakeClock(datetime.now(UTC))
    service = ElevationService(load_catalog(policies / "catalog.toml"), store, kinds, notifier, FakeTimer(clock), clock)  # type: ignore[arg-type]
    service.deps.control_groups = gates
    yield service, notifier, token
    store.close()


def approve(world: VaultApprovals, service: ElevationService, who: str, request_id: str):  # type: ignore[no-untyped-def]
    assert service.deps.control_groups is not None
    service.deps.control_groups.authorize(request_id, world.login(who))  # type: ignore[attr-defined]
    evidence = SignIn(who, world.entities[who], world.addr, world.entities[who], datetime.now(UTC), "totp")
    return service.approve(request_id, who, evidence)


def test_two_approvers_release_one_certificate_for_the_requesters_csr_and_the_bot_alone_gets_none(vault, bot) -> None:
    world, _ = vault
    service, notifier, bot_token = bot
    key = client_key()
    service.register_csr(REQUESTER, make_csr(key, NAME))
    request = service.request(REQUESTER, CERT, "10m", "CHG-8 call the orders API")
    # The bot's own token, signing on the guarded path: a pending request, no certificate.
    answer = requests.post(
        f"{world.addr}/v1/pki/sign/jitbot-{CERT}",
        json={
            "csr": make_csr(client_key(), NAME),
            "common_name": NAME,
            "ttl": "60s",
            "serial_number": "JIT-THIEF",
            "format": "pem",
        },
        headers={"X-Vault-Token": bot_token},
        timeout=10,
    ).json()
    assert not (answer.get("data") or {}).get("certificate") and answer.get("wrap_info"), answer
    assert approve(world, service, APPROVER_1, request.id).state is State.PENDING
    assert request.id not in notifier.certificates
    active = approve(world, service, APPROVER_2, request.id)
    assert active.state is State.ACTIVE
    cert = x509.load_pem_x509_certificate(
        notifier.certificates[request.id].split("-----END CERTIFICATE-----")[0].encode() + b"-----END CERTIFICATE-----\n"
    )
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == NAME
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # the requester's own key
    with pytest.raises(CredentialError):
        service.deps.control_groups.release(request.id)  # type: ignore[union-attr]  # one approval, one certificate
    service.revoke(request.id, REQUESTER)
    assert service.get(request.id).state is State.REVOKED


def test_an_ssh_certificate_is_signed_only_after_two_approvers_and_released_once(vault, bot, tmp_path) -> None:
    world, _ = vault
    service, notifier, bot_token = bot
    public = new_key(tmp_path, "id_ed25519").with_suffix(".pub").read_text()
    service.register_ssh_key(REQUESTER, public)
    request = service.request(REQUESTER, "vaulted-ssh", "10m", "CHG-9 restart the web tier")
    answer = requests.post(
        f"{world.addr}/v1/ssh-client-signer/sign/jit-vaulted-ssh",
        json={"public_key": public, "valid_principals": "web-admin", "ttl": "60s", "cert_type": "user"},
        headers={"X-Vault-Token": bot_token},
        timeout=10,
    ).json()
    assert not (answer.get("data") or {}).get("signed_key") and answer.get("wrap_info"), answer  # the bot alone: pending
    assert approve(world, service, APPROVER_1, request.id).state is State.PENDING
    assert request.id not in notifier.certificates
    active = approve(world, service, APPROVER_2, request.id)
    assert active.state is State.ACTIVE
    certificate = notifier.certificates[request.id]
    assert certificate.startswith("ssh-ed25519-cert-v01@openssh.com ")
    listed = subprocess.run(["ssh-keygen", "-L", "-f", "-"], input=certificate, capture_output=True, text=True, check=True).stdout
    assert "web-admin" in listed and "root" not in listed  # exactly the principal the scope names
    with pytest.raises(CredentialError):
        service.deps.control_groups.release(request.id)  # type: ignore[union-attr]  # one approval, one certificate
    service.revoke(request.id, REQUESTER)
    assert service.get(request.id).state is State.REVOKED
