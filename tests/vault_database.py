"""A vault-enforced database scope on a real OpenBao and the local PostgreSQL: the engine, its role and the login."""

from __future__ import annotations

import os
import time

import psycopg

from tests.databases import PG_ADMIN
from tests.integration.test_kind_database import PG_HOST, REVOCATION
from tests.vault_approval import APPROVER_1, APPROVER_2, REQUESTER, VaultApprovals

SCOPE, ROLE = "vaulted-db", "jit-cg-orders"
TABLE = f"jit_cg_orders_{os.getpid()}"  # per test process, as the database kind's own tests do
CREATION = [
    """CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';""",
    f'GRANT SELECT ON {TABLE} TO "{{{{name}}}}";',
]
DB_TOML = f"""
[scopes.{SCOPE}]
description = "Read the orders database, approved in Vault"
credential = "database"
database_role = "{ROLE}"
min_duration = "2s"
max_duration = "1h"
requesters = ["{REQUESTER}"]
approvers = ["{APPROVER_1}", "{APPROVER_2}"]
approvals_required = 2
approval = "vault"
"""


def database_engine(world: VaultApprovals) -> None:
    """What the database operator sets up once (before `jitbot vault sync`): a table, the engine, its connection with
    the username template, the role with the revocation statements docs/kinds.md gives."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id int)")
        if not admin.execute(f"SELECT 1 FROM {TABLE}").fetchall():
            admin.execute(f"INSERT INTO {TABLE} VALUES (7)")
    root = world.root
    root.sys.enable_secrets_engine("database", path="database")
    root.write_data(
        "database/config/cg-pg",
        data={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@{PG_HOST}/test?sslmode=disable",
            "username": "postgres",
            "password": "unused-with-trust-auth",
            "allowed_roles": "jit-*",
            "username_template": '{{printf "jit_%s_%s" (.DisplayName | replace "token-" "" | lowercase) (random 6 | lowercase) | truncate 63}}',
        },
    )
    root.write_data(
        f"database/roles/{ROLE}",
        data={
            "db_name": "cg-pg",
            "creation_statements": CREATION,
            "revocation_statements": REVOCATION,
            "default_ttl": "1h",
            "max_ttl": "1h",
        },
    )


def drop_table() -> None:
    for attempt in range(20):  # a lease still being revoked may REVOKE on the table at this very moment
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute("SET lock_timeout = '5s'")  # a session a failed test left open must not hang the run
                admin.execute(f"DROP TABLE IF EXISTS {TABLE}")
            return
        except (psycopg.errors.InternalError, psycopg.errors.LockNotAvailable):
            time.sleep(0.1 * (attempt + 1))


def leases(world: VaultApprovals) -> set[str]:
    """The role's logins' leases (without the `h…` leases of wrapping tokens Vault lists beside them)."""
    listed = world.root.list(f"sys/leases/lookup/database/creds/{ROLE}/") or {}
    return {key for key in (listed.get("data") or {}).get("keys") or [] if not key.startswith("h")}


def login(creds: dict[str, str]) -> psycopg.Connection:
    return psycopg.connect(f"postgresql://{PG_HOST}/test", user=creds["username"], password=creds["password"])
