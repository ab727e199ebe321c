"""A real OpenBao set up for vault-enforced approvals: approvers' entities linked to Slack IDs, a userpass login with
TOTP MFA (the tests' IdP, through OpenBao's own OIDC provider), and Vault's OIDC auth method pointed at it."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hvac
import pyotp
import requests

from devkit.openbao import OpenBaoDevServer
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


@dataclass
class VaultApprovals:
    """The server, its root client, the approvers' entities and TOTP secrets, and the bot's token after sync."""

    server: OpenBaoDevServer
    root: hvac.Client
    entities: dict[str, str] = field(default_factory=dict)
    totp: dict[str, str] = field(default_factory=dict)
    userpass_accessor: str = ""
    oidc_client_id: str = ""
    mfa_method: str = ""
    _used: set[tuple[str, str]] = field(default_factory=set)

    @property
    def addr(self) -> str:
        return self.server.addr

    def link(self, slack_user: str, mfa: bool = True) -> str:
        """An entity for the person: a userpass login (the IdP side), an alias named by the Slack ID, its TOTP."""
        name = LOGINS[slack_user]
        self.root.write_data(
            f"auth/userpass/users/{name}", data={"password": PASSWORDS[slack_user], "token_policies": "default,jitbot-approver"}
        )
        entity = self.root.write_data("identity/entity", data={"name": name, "metadata": {"email": f"{name}@jit.test"}})
        entity_id = str(entity["data"]["id"])
        slack_accessor = self.root.read("sys/auth")["data"]["slack/"]["accessor"]
        for mount, alias in ((self.userpass_accessor, name), (slack_accessor, slack_user), (self._oidc_accessor(), entity_id)):
            self.root.write_data(
                "identity/entity-alias", data={"name": alias, "canonical_id": entity_id, "mount_accessor": mount}
            )
        self.entities[slack_user] = entity_id
        return entity_id

    def _oidc_accessor(self) -> str:
        return str(self.root.read("sys/auth")["data"]["oidc/"]["accessor"])

    def login(self, slack_user: str) -> str:
        """The person's own Vault token by password (as a stolen or direct API use would have it)."""
        client = vault_client(self.addr, "unused")
        answer = client.adapter.post(f"/v1/auth/userpass/login/{LOGINS[slack_user]}", json={"password": PASSWORDS[slack_user]})
        return str(answer["auth"]["client_token"])

    def sync(self, policy_dir: Path) -> tuple[Catalog, list[str]]:
        catalog = load_catalog(policy_dir / "catalog.toml")
        kinds = credential_kinds(VaultSession(self.root))
        return catalog, sync(self.root, policy_dir, catalog, kinds)

    def identity_provider(self, redirect_uri: str) -> None:
        """The IdP approvers sign in at: OpenBao's own OIDC provider over its userpass logins, with TOTP login MFA
        (a TOTP secret per linked person); and Vault's OIDC auth method (mount `oidc`) pointed at it. Call after `link`."""
        root = self.root
        root.write_data("identity/oidc/assignment/jitbot-approvers", data={"entity_ids": sorted(self.entities.values())})
        root.write_data("identity/oidc/key/jitbot", data={"allowed_client_ids": "*", "algorithm": "RS256"})
        root.write_data(
            "identity/oidc/client/jitbot",
            data={"redirect_uris": [redirect_uri], "assignments": ["jitbot-approvers"], "key": "jitbot", "id_token_ttl": "5m"},
        )
        client = root.read("identity/oidc/client/jitbot")["data"]
        self.oidc_client_id = str(client["client_id"])
        root.write_data("identity/oidc/scope/email", data={"template": '{"email": {{identity.entity.metadata.email}}}'})
        root.write_data(
            "identity/oidc/provider/jitbot", data={"allowed_client_ids": [self.oidc_client_id], "scopes_supported": ["email"]}
        )
        issuer = requests.get(f"{self.addr}/v1/identity/oidc/provider/jitbot/.well-known/openid-configuration", timeout=10).json()
        root.write_data(
            "auth/oidc/config",
            data={
                "oidc_discovery_url": issuer["issuer"],
                "oidc_client_id": self.oidc_client_id,
                "oidc_client_secret": client["client_secret"],
            },
        )
        method = root.write_data(
            "identity/mfa/method/totp", data={"issuer": "OpenBao", "period": 30, "key_size": 20, "algorithm": "SHA1", "digits": 6}
        )
        self.mfa_method = str(method["data"]["method_id"])
        for person, entity in self.entities.items():
            url = root.write_data(
                "identity/mfa/method/totp/admin-generate", data={"method_id": self.mfa_method, "entity_id": entity}
            )
            self.totp[person] = parse_qs(urlsplit(url["data"]["url"]).query)["secret"][0]
        root.write_data(
            "identity/mfa/login-enforcement/jitbot-approvers",
            data={"mfa_method_ids": [self.mfa_method], "auth_method_accessors": [self.userpass_accessor]},
        )

    def passcode(self, slack_user: str) -> str:
        """A TOTP code OpenBao has not seen yet (each code works once): waits for the next period when needed."""
        totp = pyotp.TOTP(self.totp[slack_user])
        while True:
            now = time.time()
            # OpenBao's TOTP method allows one period of skew (its default): three fresh codes per period.
            for code in (totp.at(now), totp.at(now + 30), totp.at(now - 30)):
                if (slack_user, code) not in self._used:
                    self._used.add((slack_user, code))
                    return code
            time.sleep(1)

    def idp_login(self, slack_user: str) -> str:
        """The person's IdP session without a browser: password, then the TOTP second factor (login MFA)."""
        base = self.addr
        first = requests.post(
            f"{base}/v1/auth/userpass/login/{LOGINS[slack_user]}", json={"password": PASSWORDS[slack_user]}, timeout=10
        )
        mfa = first.json()["auth"]["mfa_requirement"]
        payload = {"mfa_request_id": mfa["mfa_request_id"], "mfa_payload": {self.mfa_method: [self.passcode(slack_user)]}}
        done = requests.post(f"{base}/v1/sys/mfa/validate", json=payload, timeout=10).json()
        return str(done["auth"]["client_token"])

    def authorize_at_idp(self, authorization_url: str, idp_token: str) -> str:
        """What the IdP's login page does once the person signed in: the authorization code for that URL's request."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        answer = requests.get(
            f"{self.addr}/v1/identity/oidc/provider/jitbot/authorize",
            params=query,
            headers={"X-Vault-Token": idp_token},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["code"])

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
    root = vault_client(server.addr, server.root_token)
    root.sys.enable_auth_method("userpass", path="userpass")
    root.sys.enable_auth_method("userpass", path="slack")  # only its aliases are used: Slack IDs name entities
    root.sys.enable_auth_method("oidc", path="oidc")
    world = VaultApprovals(server, root)
    world.userpass_accessor = str(root.read("sys/auth")["data"]["userpass/"]["accessor"])
    return world
