"""`jitbot check` on approval = "vault" for database scopes: accepted on a role of its own, refused on a shared one."""

from __future__ import annotations

import os

import pytest

from grants.catalog import CatalogError, parse_catalog
from tests.catalogs import APPROVER_1, APPROVER_2, REQUESTER, catalog_data
from tests.unit.test_catalog import jitbot
from tests.vault_approval import catalog_dir
from tests.vault_database import DB_TOML

HELD = {
    "description": "Read orders, approved in Vault",
    "credential": "database",
    "database_role": "jit-orders-held",
    "requesters": [REQUESTER],
    "approvers": [APPROVER_1, APPROVER_2],
    "approvals_required": 2,
    "approval": "vault",
    "max_extensions": 0,
    "max_duration": "1h",
}


def with_scopes(**scopes: dict[str, object]) -> dict[str, object]:
    data = catalog_data()
    data["settings"]["web_url"] = "https://jitbot.example.com"  # type: ignore[index]
    data["scopes"].update(scopes)  # type: ignore[attr-defined]
    return data


def problems_of(data: dict[str, object]) -> list[str]:
    try:
        parse_catalog(data)
    except CatalogError as exc:
        return list(exc.problems)
    return []


def test_a_vault_enforced_database_scope_on_its_own_role_is_accepted():
    catalog = parse_catalog(with_scopes(**{"orders-held": HELD}))
    assert catalog.scopes["orders-held"].vault_enforced


def test_a_bot_approved_scope_on_the_same_database_role_is_refused_naming_both():
    loose = {**HELD, "approval": "bot", "requesters": ["*"], "approvals_required": 1}
    found = problems_of(with_scopes(**{"orders-held": HELD, "orders-loose": loose}))
    assert len(found) == 1, found
    assert (
        "scopes.orders-held.database_role" in found[0] and "orders-loose" in found[0] and "database/jit-orders-held" in found[0]
    )
    # The same role on another mount is another role: nothing to refuse.
    elsewhere = {**loose, "database_mount": "database-eu"}
    assert problems_of(with_scopes(**{"orders-held": HELD, "orders-loose": elsewhere})) == []


def test_the_vault_rules_still_apply_to_database_scopes():
    shared = {**HELD, "requesters": [REQUESTER, APPROVER_1]}
    found = problems_of(with_scopes(**{"orders-held": shared}))
    assert any(APPROVER_1 in p and "both request and approve" in p for p in found), found


@pytest.mark.parametrize("kind", ["vault_identity"])
def test_a_kind_without_a_vault_path_is_still_refused(kind: str):
    scope = {**{k: v for k, v in HELD.items() if k != "database_role"}, "credential": kind, "policies": ["payments-read"]}
    found = problems_of(with_scopes(**{"held": scope}))
    assert any("works for vault_token, database, ssh and pki scopes, not vault_identity" in p for p in found), found


def test_jitbot_check_accepts_the_shipped_catalog_with_a_vault_enforced_database_scope_and_explains_pitfalls(tmp_path):
    policies = catalog_dir(tmp_path, extra=DB_TOML)
    env = {**os.environ, "JITBOT_CATALOG": str(policies / "catalog.toml")}
    accepted = jitbot("check", env=env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    # Pitfall (a), written by hand beside it: still explained, together with a bot-approved twin on its role.
    (policies / "hand-written.hcl").write_text(
        'path "database/creds/jit-cg-orders" {\n  capabilities = ["read"]\n  control_group = {\n    factor "ops" {\n'
        '      identity { group_names = ["ops"] approvals = 1 }\n    }\n  }\n}\n'
    )
    twin = DB_TOML.replace("[scopes.vaulted-db]", "[scopes.loose-db]").replace('approval = "vault"', 'approval = "bot"')
    (policies / "catalog.toml").write_text((policies / "catalog.toml").read_text() + twin)
    refused = jitbot("check", env=env)
    assert refused.returncode == 1, refused.stdout
    assert "hand-written.hcl" in refused.stdout and "top-level" in refused.stdout
    assert "scopes.vaulted-db.database_role" in refused.stdout and "loose-db" in refused.stdout
