"""End to end through signed Slack requests: a database login, an SSH certificate, a raised Vault identity and a
service on behalf, each approved in Slack against the real bot, OpenBao, PostgreSQL and sshd, with the bot's store
on SQLite and on PostgreSQL (conftest's `db_url`)."""

from __future__ import annotations

import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest
from sqlalchemy import text

from devkit.openbao import OpenBaoDevServer
from devkit.standin import message_text as shown
from grants.adapters.kinds.ssh_ca import write_ssh_role
from tests.conftest import APPROVER, APPROVER_3, OUTSIDER, REQUESTER, World, local_bot
from tests.integration.test_kind_database import (
    TABLE,
    _open_locked_session,
    _role_exists,
    _session_is_dead,
    _wait_until_gone,
    database_engine,  # noqa: F401  (the DB operator's one-time setup, as a fixture)
)
from tests.ssh_fixtures import SshServer, can_log_in, new_key

PLATFORM = "U0APPR005"  # approves web-ssh (group platform)
SECRET = "payments/kinds-e2e"
CERTIFICATE = re.compile(r"(ssh-ed25519-cert-v01@openssh\.com [A-Za-z0-9+/=]+)")


@pytest.fixture
def world(tmp_path, db_url, openbao: OpenBaoDevServer, bot_vault_token, vault_root) -> Iterator[World]:
    """The real bot, with its SSH revocation list in this test's folder."""
    krl = tmp_path / "krl" / "revoked.krl"
    with local_bot(tmp_path, openbao.addr, bot_vault_token, vault=vault_root, db_url=db_url, jitbot_ssh_krl=krl) as world:
        yield world


@pytest.fixture(scope="module")
def web_ssh_role(vault_root: hvac.Client, ssh_ca: str) -> None:
    """`jitbot vault sync` would write it; the session's sync may have run before the SSH CA mount existed."""
    write_ssh_role(vault_root, "jit-web-ssh", ["web-admin"], timedelta(minutes=30))


@pytest.fixture(scope="module")
def linked_requester(vault_root: hvac.Client, vault_synced: list[str]) -> str:
    """REQUESTER logs in to Vault with userpass on the `slack` mount as their Slack user ID: their own token."""
    try:
        vault_root.sys.enable_auth_method("userpass", path="slack")
    except InvalidRequest:
        pass
    password = secrets.token_hex(12)
    vault_root.write_data(f"auth/slack/users/{REQUESTER}", data={"password": password, "token_policies": "default"})
    login = vault_root.write_data(f"auth/slack/login/{REQUESTER}", data={"password": password})
    vault_root.secrets.kv.v2.create_or_update_secret(path=SECRET, secret={"card": "4111"})
    return str(login["auth"]["client_token"])


@pytest.fixture(scope="module")
def service_token(vault_root: hvac.Client, vault_synced: list[str]) -> str:
    """The CI deployer's own Vault token: a userpass login on its own mount, aliased to the entity `ci-deployer`."""
    try:
        vault_root.sys.enable_auth_method("userpass", path="services")
    except InvalidRequest:
        pass
    entity = vault_root.read("identity/entity/name/ci-deployer")
    if entity is None:
        vault_root.write_data("identity/entity", data={"name": "ci-deployer"})
        entity = vault_root.read("identity/entity/name/ci-deployer")
    accessor = vault_root.sys.list_auth_methods()["services/"]["accessor"]
    try:
        vault_root.write_data(
            "identity/entity-alias",
            data={"name": "ci-deployer", "canonical_id": entity["data"]["id"], "mount_accessor": accessor},
        )
    except InvalidRequest:
        pass  # linked by an earlier run in this session
    password = secrets.token_hex(12)
    vault_root.write_data("auth/services/users/ci-deployer", data={"password": password, "token_policies": "default"})
    login = vault_root.write_data("auth/services/login/ci-deployer", data={"password": password})
    assert login["auth"]["entity_id"] == entity["data"]["id"]  # the service's token is the entity's
    return str(login["auth"]["client_token"])


def ask(world: World, text: str, user: str = REQUESTER) -> str:
    status, body = world.client.slash(user, text)
    assert status == 200 and "Request `JIT-" in body["text"], body
    return str(body["text"].split("`")[1])


def approve(world: World, rid: str, approver: str) -> None:
    world.slack.wait_for(lambda: world.slack.find_message(lambda m: rid in shown(m) and "Approve" in shown(m)))
    status, _ = world.client.click(approver, "approve", rid)
    assert status == 200


def dm_with(world: World, user: str, *parts: str) -> str:
    message = world.slack.wait_for(
        lambda: next((m for m in world.slack.dm_messages(user) if all(p in shown(m) for p in parts)), None)
    )
    return shown(message)


def revoke(world: World, rid: str, user: str = REQUESTER) -> None:
    status, _ = world.client.slash(user, f"revoke {rid}")
    assert status == 200
    world.wait_audit(rid, "revoked")


def can_read(world: World, token: str) -> bool:
    try:
        hvac.Client(url=world.vault_addr, token=token).secrets.kv.v2.read_secret_version(
            path=SECRET, raise_on_deleted_version=True
        )
    except Forbidden:
        return False
    return True


def fetch_krl(world: World) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"{world.bot.url}/ssh/revoked.krl", timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_database_grant_ends_its_open_session_at_revoke(world: World, database_engine: None) -> None:  # noqa: F811
    rid = ask(world, "orders-db-read 30m INC-7 look at stuck orders")
    approve(world, rid, APPROVER)
    dm = dm_with(world, REQUESTER, rid, "unwrap")
    assert "psql -h db.staging -d orders" in dm and "ends at" in dm and "UTC" in dm  # the real end, and the hint
    creds = hvac.Client(url=world.vault_addr, token=world.wrapping_token(REQUESTER, rid)).sys.unwrap()["data"]
    assert creds["username"].startswith(f"jit_{rid.lower()}_")  # username_template: the DB's logs name the grant
    session = _open_locked_session(creds)
    assert session.execute(f"SELECT count(*) FROM {TABLE}").fetchone() is not None

    revoke(world, rid)
    _wait_until_gone(creds["username"], within=15)
    assert _session_is_dead(session) and not _role_exists(creds["username"])
    session.close()
    assert world.audit_names(rid) == ["requested", "approved", "issued", "revoked"]
    issued = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'issued'")[0][0]
    assert '"kind":"database"' in issued.replace(" ", "") and "password" not in issued


def test_ssh_needs_a_registered_key_then_logs_in_until_revoked_and_the_krl_is_fetched(
    world: World, web_ssh_role: None, sshd: SshServer, tmp_path: Path
) -> None:
    status, body = world.client.slash(REQUESTER, "web-ssh 10m INC-8 restart nginx")
    assert status == 200 and "Request `JIT-" in body["text"]  # the catalog allows it: the key is looked up after the ack
    refused = world.slack.wait_for(lambda: world.slack.responses_to(world.client.last_response_name))[0]["text"]
    assert "was not made" in refused and "ssh-key" in refused, refused
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 0  # refused before anything was created

    key = new_key(tmp_path, "dana")
    private_text = key.read_text()
    status, body = world.client.slash(REQUESTER, f"ssh-key {private_text}")
    assert "PRIVATE key" in body["text"] and "rotate" in body["text"]
    assert world.rows("SELECT count(*) FROM ssh_keys")[0][0] == 0
    status, body = world.client.slash(REQUESTER, f"ssh-key {key.with_suffix('.pub').read_text()}")
    fingerprint = body["text"].split("`")[1]
    assert fingerprint.startswith("SHA256:")
    status, body = world.client.slash(REQUESTER, "ssh-key")
    assert fingerprint in body["text"]
    registered = world.rows("SELECT detail FROM audit_events WHERE event = 'ssh_key_registered'")
    assert len(registered) == 1 and fingerprint in registered[0][0]
    status, empty = fetch_krl(world)  # nothing revoked yet: an empty list (sshd refuses every key without one)
    assert status == 200 and empty.startswith(b"SSHKRL")

    rid = ask(world, "web-ssh 10m INC-8 restart nginx")
    approve(world, rid, PLATFORM)
    dm = dm_with(world, REQUESTER, rid, "ssh-ed25519-cert-v01@openssh.com")
    assert "web-admin" in dm and "ssh-keygen -L" in dm and "not cut" in dm and "Valid until" in dm
    certificate = tmp_path / "dana-cert.pub"
    certificate.write_text(CERTIFICATE.search(dm).group(1) + "\n")  # type: ignore[union-attr]
    sshd.allow_principals("web-admin")
    sshd.krl_path.write_bytes(empty)
    assert can_log_in(sshd, key, certificate)

    revoke(world, rid)
    told = dm_with(world, REQUESTER, rid, "was revoked by you")
    assert "sessions already open survive" in told
    status, krl = fetch_krl(world)
    assert status == 200 and krl
    sshd.krl_path.write_bytes(krl)  # what the hosts' cron job does: curl … -o /etc/ssh/revoked.krl
    assert not can_log_in(sshd, key, certificate)


def test_an_identity_grant_raises_the_existing_token_until_revoked(world: World, linked_requester: str) -> None:
    assert not can_read(world, linked_requester)
    rid = ask(world, "payments-identity 20m INC-9 check a refund")
    approve(world, rid, APPROVER)
    dm = dm_with(world, REQUESTER, rid, "payments-read")
    assert "log in to Vault as usual" in dm and "unwrap" not in dm and "UTC" in dm
    world.wait_audit(rid, "issued")
    assert can_read(world, linked_requester)
    revoke(world, rid)
    assert not can_read(world, linked_requester)


def test_a_service_on_behalf_is_asked_for_by_a_requester_and_raises_the_services_entity(
    world: World, vault_root: hvac.Client, linked_requester: str, service_token: str
) -> None:
    entity_id = vault_root.read("identity/entity/name/ci-deployer")["data"]["id"]
    assert not can_read(world, service_token)

    status, body = world.client.slash(REQUESTER, "payments-identity for billing-batch 20m INC-10 deploy")
    assert "cannot be requested for `billing-batch`" in body["text"]
    refused = world.rows("SELECT detail FROM audit_events WHERE event = 'rejected'")
    assert any("service_not_listed" in row[0] for row in refused)
    status, body = world.client.slash(REQUESTER, "orders-db-read for ci-deployer 20m INC-10 deploy")
    assert "cannot be requested for a service" in body["text"]
    status, body = world.client.slash(OUTSIDER, "payments-identity for ci-deployer 20m INC-10 deploy")
    assert "Request `JIT-" not in body["text"]

    rid = ask(world, "payments-identity for ci-deployer 20m INC-10 deploy the refund fix")
    message = world.slack.wait_for(lambda: world.slack.find_message(lambda m: rid in shown(m) and "Approve" in shown(m)))
    assert f"<@{REQUESTER}> asks for" in shown(message) and "for service *ci-deployer*" in shown(message)
    requested = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'requested'")[0][0]
    assert '"on_behalf_of":"entity:ci-deployer"' in requested.replace(" ", "")
    approve(world, rid, APPROVER_3)
    world.wait_audit(rid, "issued")
    group = vault_root.read(f"identity/group/name/jit-{rid}")["data"]
    assert group["member_entity_ids"] == [entity_id] and group["metadata"]["requester"] == REQUESTER
    assert can_read(world, service_token)  # the service's own token, logged in before the grant, gains the policy
    assert not can_read(world, linked_requester)  # the service is raised, not the person who asked
    revoke(world, rid)
    assert vault_root.read(f"identity/group/name/jit-{rid}") is None
    assert not can_read(world, service_token)  # and loses it at revoke


def test_reconcile_deletes_an_identity_group_no_active_grant_holds(world: World, linked_requester: str) -> None:
    rid = ask(world, "payments-identity 20m INC-11 check")
    approve(world, rid, APPROVER)
    world.wait_audit(rid, "issued")
    # The bot loses track of the grant (a crash between Vault and the store, a row rewritten): the group stays.
    assert world.bot.runtime is not None
    with world.bot.runtime.store.engine.begin() as connection:
        connection.execute(text(f"UPDATE requests SET state = 'revoked' WHERE id = '{rid}'"))
    assert can_read(world, linked_requester)
    counts = world.bot.runtime.service.reconcile()
    assert counts["orphans_ended"] >= 1
    deadline = time.monotonic() + 5
    while can_read(world, linked_requester):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_request_form_asks_for_a_public_key_for_ssh_scopes_and_registers_it(world: World, tmp_path: Path) -> None:
    status, _ = world.client.slash(REQUESTER, "")
    assert status == 200
    view = world.slack.wait_for(
        lambda: next((v for v in world.slack.views.values() if v["view"].get("callback_id") == "request_modal"), None)
    )
    assert "public_key" in [block.get("block_id") for block in view["view"]["blocks"]]
    scope = {"type": "static_select", "selected_option": {"value": "web-ssh"}}
    fields = {"scope": {"value": scope}, "duration": {"value": "10m"}, "reason": {"value": "INC-12 form"}}
    status, body = world.client.submit_view(REQUESTER, "request_modal", fields)
    assert body["response_action"] == "errors" and "ssh-key" in body["errors"]["public_key"]  # none registered, none pasted
    key = new_key(tmp_path, "form")
    status, body = world.client.submit_view(REQUESTER, "request_modal", {**fields, "public_key": {"value": key.read_text()}})
    assert "PRIVATE key" in body["errors"]["public_key"] and world.rows("SELECT count(*) FROM ssh_keys")[0][0] == 0
    status, body = world.client.submit_view(
        REQUESTER, "request_modal", {**fields, "public_key": {"value": key.with_suffix(".pub").read_text()}}
    )
    assert status == 200
    world.slack.wait_for(lambda: any("Request `JIT-" in shown(m) for m in world.slack.dm_messages(REQUESTER)))
    assert world.rows("SELECT scope FROM requests") == [("web-ssh",)]
    assert world.rows("SELECT count(*) FROM ssh_keys")[0][0] == 1
