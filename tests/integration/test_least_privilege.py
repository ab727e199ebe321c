"""The shipped catalog is least-privilege: against a real OpenBao with the shipped policies synced, a token of
each `*-read` scope reads what it names and can write, delete or administer nothing."""

from __future__ import annotations

import re

import hvac
import pytest
from hvac.exceptions import Forbidden

from grants.catalog import load_catalog
from tests.vault_fixtures import POLICY_DIR

CATALOG = load_catalog(POLICY_DIR / "catalog.toml")
READ_SCOPES = sorted(name for name, s in CATALOG.scopes.items() if name.endswith("-read") and s.credential == "vault_token")
WRITE_CAPABILITIES = {"create", "update", "patch", "delete", "sudo"}
# Paths nobody with a read scope may touch, beyond every path any shipped policy names.
SENSITIVE = [
    "sys/policy/jitbot-bot",
    "sys/policies/acl/jitbot-bot",
    "auth/token/create",
    "auth/token/create/jitbot",
    "auth/token/revoke-accessor",
    "sys/mounts/secret",
    "sys/auth",
    "database/config/staging-main",
    "database/roles/staging-app",
    "database/rotate-root/staging-main",
    "secret/data/staging/db/main",
    "secret/delete/staging/app",
    "secret/destroy/staging/app",
    "secret/metadata/staging/app",
]
# What a secret engine calls "update" to *issue* a read-only credential (kubernetes/creds/<role>) is a read
# in effect: it writes nothing. Only such paths, named read-only, may carry update in a read scope.
READ_ONLY_ISSUE = re.compile(r"^[a-z-]+/creds/[a-z-]*read-only$")


def policy_paths() -> list[str]:
    """Every path any shipped policy names, with each glob filled in with a concrete segment."""
    paths = set()
    for policy in POLICY_DIR.glob("*.hcl"):
        for path in re.findall(r'^\s*path\s+"([^"]+)"', policy.read_text(), re.M):
            paths.add(path.replace("+", "probe").replace("*", "probe"))
    return sorted(paths | set(SENSITIVE))


def token_for(vault_root: hvac.Client, addr: str, scope_name: str) -> hvac.Client:
    scope = CATALOG.scopes[scope_name]
    created = vault_root.auth.token.create(
        policies=list(scope.policies), no_default_policy=scope.no_default_policy, ttl="5m", display_name=f"lp-{scope_name}"
    )
    return hvac.Client(url=addr, token=created["auth"]["client_token"])


def capabilities(vault_root: hvac.Client, token: str, paths: list[str]) -> dict[str, list[str]]:
    # sys/capabilities asked by the operator: a scope without Vault's `default` policy may not ask itself.
    answer = vault_root.adapter.post("/v1/sys/capabilities", json={"token": token, "paths": paths})
    data = answer.get("data", answer) if isinstance(answer, dict) else answer.json()
    return {path: list(data[path]) for path in paths}


@pytest.mark.parametrize("scope_name", READ_SCOPES)
def test_a_read_scope_reads_and_cannot_write_delete_or_administer(scope_name, openbao, vault_root, vault_synced):
    assert "policy staging-read" in " ".join(vault_synced) or scope_name != "staging-read"
    client = token_for(vault_root, openbao.addr, scope_name)
    paths = policy_paths()
    answer = capabilities(vault_root, client.token, paths)
    # Vault's own `default` policy (renew-self, revoke-self…) is every token's baseline, not the scope's grant.
    baseline = capabilities(
        vault_root, vault_root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"], paths
    )
    answer = {path: sorted(set(answer[path]) - set(baseline[path])) for path in paths}
    too_much = {
        path: sorted(set(answer[path]) & WRITE_CAPABILITIES)
        for path in paths
        if set(answer[path]) & WRITE_CAPABILITIES and not (set(answer[path]) <= {"update"} and READ_ONLY_ISSUE.match(path))
    }
    assert too_much == {}, f"{scope_name} can write: {too_much}"
    readable = [path for path in paths if "read" in answer[path]]
    assert readable, f"{scope_name} reads nothing"
    # And for real: it reads a secret it names, and a write or delete there is refused.
    prefix = {"payments-read": "payments", "staging-read": "staging", "k8s-prod-read": "k8s/prod"}[scope_name]
    vault_root.secrets.kv.v2.create_or_update_secret(path=f"{prefix}/lp-probe", secret={"v": "1"}, mount_point="secret")
    read = client.secrets.kv.v2.read_secret_version(
        path=f"{prefix}/lp-probe", mount_point="secret", raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"v": "1"}
    with pytest.raises(Forbidden):
        client.secrets.kv.v2.create_or_update_secret(path=f"{prefix}/lp-probe", secret={"v": "2"}, mount_point="secret")
    with pytest.raises(Forbidden):
        client.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{prefix}/lp-probe", mount_point="secret")
    with pytest.raises(Forbidden):
        client.sys.create_or_update_acl_policy(name="lp-escalate", policy='path "*" { capabilities = ["sudo"] }')


def test_staging_read_is_not_db_admin_staging():
    assert CATALOG.scopes["staging-read"].policies == ("staging-read",) or list(CATALOG.scopes["staging-read"].policies) == [
        "staging-read"
    ]
    text = (POLICY_DIR / "staging-read.hcl").read_text()
    capabilities = set(re.findall(r'"([a-z]+)"', " ".join(re.findall(r"capabilities\s*=\s*\[([^\]]*)\]", text))))
    assert capabilities <= {"read", "list"}, capabilities
