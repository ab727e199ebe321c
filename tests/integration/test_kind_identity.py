"""The `vault_identity` kind on a real OpenBao: a userpass user's existing token gains a policy only while the group lives."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest

from devkit.openbao import OpenBaoDevServer
from grants.adapters.kinds import credential_kinds
from grants.adapters.kinds.identity import (
    UnlinkedPerson,
    create_grant_group,
    delete_grant_group,
    grant_group,
    requester_entity_id,
    service_entity_id,
    sweep,
)
from grants.adapters.vault_client import VaultSession, vault_client
from grants.catalog import parse_catalog
from grants.credentials import CredentialHandle, CredentialStatus, ForeignCredential, IssueOrder
from grants.domain import CredentialError, new_request_id
from tests.conftest import ROOT

MOUNT = "slack"  # the auth mount whose aliases are named by Slack user IDs
SECRET = "payments/identity-test"


@pytest.fixture(scope="module")
def linked_person(vault_root: hvac.Client, vault_synced: list[str]) -> Iterator[tuple[str, str]]:
    """A person who logs in with userpass on the `slack` mount as their Slack user ID: (user ID, their own token)."""
    try:
        vault_root.sys.enable_auth_method("userpass", path=MOUNT)
    except InvalidRequest:
        pass
    user, password = "U0ALICE01", secrets.token_hex(12)
    vault_root.write_data(f"auth/{MOUNT}/users/{user}", data={"password": password, "token_policies": "default"})
    login = vault_root.write_data(f"auth/{MOUNT}/login/{user}", data={"password": password})  # creates the entity
    vault_root.secrets.kv.v2.create_or_update_secret(path=SECRET, secret={"card": "4111"})
    yield user, login["auth"]["client_token"]


@pytest.fixture
def bot(openbao: OpenBaoDevServer, bot_vault_token: str) -> hvac.Client:
    return vault_client(openbao.addr, bot_vault_token)


def _can_read(openbao: OpenBaoDevServer, token: str) -> bool:
    try:
        vault_client(openbao.addr, token).secrets.kv.v2.read_secret_version(path=SECRET, raise_on_deleted_version=True)
    except Forbidden:
        return False
    return True


def _grant(bot: hvac.Client, user: str, request_id: str, ends_in: timedelta = timedelta(minutes=30)) -> None:
    entity = requester_entity_id(bot, user, MOUNT)
    create_grant_group(bot, request_id, ["payments-read"], entity, datetime.now(UTC) + ends_in, user)


def test_the_existing_token_reads_only_while_the_group_exists(
    openbao: OpenBaoDevServer, bot: hvac.Client, linked_person: tuple[str, str]
) -> None:
    user, token = linked_person
    assert not _can_read(openbao, token)
    request_id = new_request_id()
    _grant(bot, user, request_id)
    assert _can_read(openbao, token)  # the same token, no new login: identity policies apply per request
    group = grant_group(bot, request_id)
    assert group is not None and group["name"] == f"jit-{request_id}" and group["policies"] == ["payments-read"]
    assert group["metadata"]["request_id"] == request_id and group["metadata"]["requester"] == user
    delete_grant_group(bot, request_id)  # early revoke
    assert not _can_read(openbao, token)
    delete_grant_group(bot, request_id)  # already gone is success
    assert grant_group(bot, request_id) is None


def test_the_sweeper_ends_expired_and_too_old_groups_with_its_own_small_policy(
    openbao: OpenBaoDevServer, bot: hvac.Client, vault_root: hvac.Client, linked_person: tuple[str, str]
) -> None:
    user, token = linked_person
    expired, live = new_request_id(), new_request_id()
    _grant(bot, user, expired, ends_in=timedelta(seconds=-1))  # the bot "died" before ending it
    _grant(bot, user, live, ends_in=timedelta(days=30))  # as if someone forged a far-future expires_at
    sweeper_token = vault_root.auth.token.create(policies=["jitbot-sweeper"], no_default_policy=True, ttl="5m")["auth"][
        "client_token"
    ]
    sweeper = vault_client(openbao.addr, sweeper_token)
    lines = sweep(sweeper, datetime.now(UTC), max_age=timedelta(hours=2))
    assert [line.split(":")[0] for line in lines] == [f"deleted jit-{expired}"]
    assert grant_group(bot, expired) is None and grant_group(bot, live) is not None
    assert _can_read(openbao, token)  # the live grant still works
    # Past the catalog's longest total by the server's creation time, even with a far-future expires_at.
    lines = sweep(sweeper, datetime.now(UTC) + timedelta(hours=3), max_age=timedelta(hours=2))
    assert len(lines) == 1 and lines[0].startswith(f"deleted jit-{live}: older than 7200s (created 20")
    assert not _can_read(openbao, token)
    with pytest.raises(CredentialError):  # the sweeper's policy can delete, never create
        create_grant_group(sweeper, new_request_id(), ["payments-read"], "x", datetime.now(UTC), user)


def test_groups_not_named_jit_are_never_swept(bot: hvac.Client, vault_root: hvac.Client) -> None:
    vault_root.write_data("identity/group/name/ops-team", data={"policies": ["payments-read"]})
    sweep(vault_root, datetime.now(UTC) + timedelta(days=365), max_age=timedelta(hours=1))
    assert vault_root.read("identity/group/name/ops-team") is not None


def test_an_unlinked_person_is_told_how_to_link(bot: hvac.Client, linked_person: tuple[str, str]) -> None:
    with pytest.raises(UnlinkedPerson, match="entity alias named `U0NOBODY1` on the `slack` auth mount"):
        requester_entity_id(bot, "U0NOBODY1", MOUNT)


def test_a_service_on_behalf_gains_the_policy_for_its_own_token(
    openbao: OpenBaoDevServer, bot: hvac.Client, vault_root: hvac.Client
) -> None:
    vault_root.write_data("identity/entity", data={"name": "ci-deployer"})  # 204 when an earlier test made it
    entity_id = vault_root.read("identity/entity/name/ci-deployer")["data"]["id"]
    assert service_entity_id(bot, "entity:ci-deployer") == entity_id
    with pytest.raises(CredentialError, match="does not exist"):
        service_entity_id(bot, "entity:nobody")
    request_id = new_request_id()
    create_grant_group(
        bot, request_id, ["payments-read"], entity_id, datetime.now(UTC) + timedelta(minutes=5), "U0ALICE01", "entity:ci-deployer"
    )
    group = grant_group(bot, request_id)
    assert group is not None and group["member_entity_ids"] == [entity_id]
    assert group["metadata"]["subject"] == "entity:ci-deployer" and group["metadata"]["requester"] == "U0ALICE01"
    delete_grant_group(bot, request_id)


def test_the_bot_cannot_attach_a_policy_identity_scopes_do_not_grant(bot: hvac.Client, linked_person: tuple[str, str]) -> None:
    entity = requester_entity_id(bot, linked_person[0], MOUNT)
    with pytest.raises(CredentialError, match="permission denied"):
        create_grant_group(bot, new_request_id(), ["payments-write"], entity, datetime.now(UTC), "U0ALICE01")
    with pytest.raises(CredentialError, match="permission denied"):
        create_grant_group(bot, new_request_id(), ["payments-read", "payments-write"], entity, datetime.now(UTC), "U0ALICE01")


def test_jitbot_vault_sweep_runs_from_cron_with_the_sweeper_token(
    openbao: OpenBaoDevServer, bot: hvac.Client, vault_root: hvac.Client, linked_person: tuple[str, str], tmp_path: Path
) -> None:
    user, token = linked_person
    request_id = new_request_id()
    _grant(bot, user, request_id, ends_in=timedelta(seconds=-5))  # the bot never ended it
    assert _can_read(openbao, token)  # fails open until someone sweeps: the reason the sweeper exists
    sweeper_token = vault_root.auth.token.create(policies=["jitbot-sweeper"], no_default_policy=True, ttl="5m")["auth"][
        "client_token"
    ]
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": sweeper_token,
        "JITBOT_CATALOG": str(ROOT / "vault_policies" / "catalog.toml"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "vault", "sweep"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"deleted jit-{request_id}: expired at" in result.stdout
    assert not _can_read(openbao, token)
    bad = subprocess.run(
        [sys.executable, "-m", "bot.cli", "vault", "sweep", "--max-age", "soon"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--max-age" in bad.stderr and "Traceback" not in bad.stderr


def test_the_identity_kind_behind_the_seam_issues_extends_and_revokes(
    openbao: OpenBaoDevServer, bot: hvac.Client, vault_root: hvac.Client, linked_person: tuple[str, str]
) -> None:
    user, token = linked_person
    scope_data = {
        "description": "Raise my identity",
        "credential": "vault_identity",
        "policies": ["payments-read"],
        "on_behalf_of": ["entity:ci-deployer"],
        "requesters": ["*"],
        "approvers": ["U0APPR001"],
    }
    scope = parse_catalog({"scopes": {"payments-identity": scope_data}}).scopes["payments-identity"]
    kinds = credential_kinds(VaultSession(bot), identity_alias_mount=MOUNT)
    request_id = new_request_id()
    order = IssueOrder(request_id, "payments-identity", user, timedelta(minutes=5), datetime.now(UTC) + timedelta(minutes=5))
    issued = kinds.issue(order, scope)
    assert issued.handle == CredentialHandle("vault_identity", f"jit-{request_id}") and issued.valid_until is None
    assert issued.delivery.secret is None and "log in to Vault as usual" in " ".join(issued.delivery.lines)
    assert _can_read(openbao, token) and kinds.status(issued.handle, request_id) is CredentialStatus.ALIVE
    later = datetime.now(UTC) + timedelta(minutes=20)
    extended = kinds.extend(issued.handle, IssueOrder(request_id, "payments-identity", user, timedelta(minutes=20), later), scope)
    assert extended.handle == issued.handle  # stretched in place
    assert grant_group(bot, request_id)["metadata"]["expires_at"] == later.isoformat()  # type: ignore[index]
    with pytest.raises(ForeignCredential):
        kinds.revoke(issued.handle, "JIT-OTHER000")
    kinds.revoke(issued.handle, request_id)
    assert not _can_read(openbao, token) and kinds.status(issued.handle, request_id) is CredentialStatus.GONE
    kinds.revoke(issued.handle, request_id)  # already gone is success
    with pytest.raises(CredentialError, match="not a service"):
        kinds.issue(
            IssueOrder(new_request_id(), "payments-identity", user, order.ttl, order.until, on_behalf_of="entity:root-ish"), scope
        )
    with pytest.raises(UnlinkedPerson):
        kinds.issue(IssueOrder(new_request_id(), "payments-identity", "U0NOBODY1", order.ttl, order.until), scope)
