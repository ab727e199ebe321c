"""A real OpenBao set up for vault-enforced approvals: approvers' entities linked to Slack IDs, a userpass login with
TOTP MFA (the tests' IdP, through OpenBao's own OIDC provider), and Vault's OIDC auth method pointed at it: the dev
kit's `devkit/stepup.py` (which `jitbot demo` uses too) with the tests' people."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import hvac

from devkit.openbao import OpenBaoDevServer
from devkit.stepup import OpenBaoIdP
from grants.adapters.control_groups import ControlGroupHolds, VaultControlGroups
from grants.adapters.kinds import credential_kinds
from grants.adapters.vault_client import VaultSession, vault_client
from grants.adapters.vault_sync import sync
from grants.catalog import Catalog, load_catalog

ROOT = Path(__file__).resolve().parents[1]
REQUESTER, APPROVER_1, APPROVER_2, STRANGER = "U0DEV0001", "U0APPR001", "U0APPR002", "U0APPR009"
PASSWORDS = {APPROVER_1: "alice-pw", APPROVER_2: "bob-pw", REQUESTER: "dev-pw", STRANGER: "eve-pw"}
LOGINS = {APPROVER_1: "alice", APPROVER_2: "bob", REQUESTER: "dev", STRANGER: "eve"}
SCOPE = "vaulted"

SCOPE_TOML = f"""
[scopes.{SCOPE}]
description = "Change production payment secrets, approved in Vault"
credential = "vault_token"
policies = ["payments-read"]
min_duration = "2s"
default_duration = "15m"
max_duration = "1h"
requesters = ["{REQUESTER}"]
approvers = ["{APPROVER_1}", "{APPROVER_2}"]
approvals_required = 2
approval = "vault"

[scopes.{SCOPE}-unlinked]
description = "The same, with an approver Vault does not know"
credential = "vault_token"
policies = ["payments-read"]
requesters = ["{REQUESTER}"]
approvers = ["{APPROVER_1}", "{STRANGER}"]
approval = "vault"
"""


def catalog_dir(tmp: Path, web_url: str = "http://127.0.0.1:9", extra: str = "") -> Path:
    """The shipped policies and catalog plus the vault-enforced scope, with `web_url` set."""
    target = tmp / "policies"
    shutil.copytree(ROOT / "vault_policies", target)
    catalog = target / "catalog.toml"
    text = catalog.read_text().replace("[settings]\n", f'[settings]\nweb_url = "{web_url}"\n', 1)
    catalog.write_text(text + SCOPE_TOML + extra)
    return target


class VaultApprovals(OpenBaoIdP):
    """The dev kit's OpenBao IdP with the tests' people, plus the server, the bot's token after sync and its gates."""

    def __init__(self, server: OpenBaoDevServer, root: hvac.Client):
        super().__init__(server.addr, root, {user: (LOGINS[user], PASSWORDS[user]) for user in LOGINS})
        self.server = server

    def login(self, slack_user: str) -> str:
        """The person's own Vault token by password (as a stolen or direct API use would have it)."""
        client = vault_client(self.addr, "unused")
        answer = client.adapter.post(f"/v1/auth/userpass/login/{LOGINS[slack_user]}", json={"password": PASSWORDS[slack_user]})
        return str(answer["auth"]["client_token"])

    def sync(self, policy_dir: Path) -> tuple[Catalog, list[str]]:
        catalog = load_catalog(policy_dir / "catalog.toml")
        kinds = credential_kinds(VaultSession(self.root))
        return catalog, sync(self.root, policy_dir, catalog, kinds)

    def bot_token(self) -> str:
        created = self.root.auth.token.create(policies=["jitbot-bot"], no_default_policy=True, ttl="2h")
        return str(created["auth"]["client_token"])

    def gates(self, token: str) -> tuple[VaultControlGroups, Any]:
        """The bot's control groups and kinds, on the bot's own token."""
        session = VaultSession(vault_client(self.addr, token))
        kinds = credential_kinds(session, gate=ControlGroupHolds(session.client, alias_mount="slack"))
        return VaultControlGroups(session.client, kinds, alias_mount="slack"), kinds


def start(server: OpenBaoDevServer) -> VaultApprovals:
    """Configure a fresh dev server: userpass (the IdP's login), `slack` (alias mount), `oidc` (the auth method)."""
    world = VaultApprovals(server, vault_client(server.addr, server.root_token))
    world.enable()
    return world
