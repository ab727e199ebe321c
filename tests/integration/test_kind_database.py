"""The `database` kind against OpenBao's database engine and the local PostgreSQL: sessions die with the grant."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import hvac
import psycopg
import pytest
from hvac.exceptions import InvalidRequest

from devkit.openbao import OpenBaoDevServer
from grants.adapters.kinds import credential_kinds
from grants.adapters.kinds.database import (
    IssuedDatabaseCredential,
    database_role_warnings,
    issue_database_credential,
    sync_database,
)
from grants.adapters.kinds.database_kind import parts
from grants.adapters.vault_client import VaultSession, vault_client
from grants.catalog import load_catalog, parse_catalog
from grants.catalog_kinds import DatabaseScope
from grants.credentials import MAX_WRAP_TTL, CredentialHandle, CredentialStatus, ForeignCredential, IssueOrder
from grants.domain import CredentialError, new_request_id
from grants.durations import format_duration
from tests.databases import PG_ADMIN
from tests.vault_fixtures import POLICY_DIR

ROLE = "jit-orders-read"
# Per test process: two runs on one machine share the database `test`, and one must not drop the other's table.
TABLE = f"jit_kind_orders_{os.getpid()}"
PG_HOST = PG_ADMIN.split("://", 1)[1].split("@", 1)[1].split("/", 1)[0]  # 127.0.0.1:5432
# The role definition docs/kinds.md gives the database operator (revocation ends sessions before dropping the role).
CREATION = [
    """CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';""",
    f'GRANT SELECT ON {TABLE} TO "{{{{name}}}}";',
]
REVOCATION = [
    """ALTER ROLE "{{name}}" NOLOGIN;""",
    """REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{name}}";""",
    """SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = '{{name}}';""",
    """DROP ROLE IF EXISTS "{{name}}";""",
]
DB_SCOPE = {
    "description": "Read orders",
    "credential": "database",
    "database_role": ROLE,
    "connect_hint": "psql -h db.staging -d orders",
    "requesters": ["*"],
    "approvers": ["U0APPR001"],
}


def shipped_database_scopes() -> dict[str, DatabaseScope]:
    catalog = load_catalog(POLICY_DIR / "catalog.toml")
    return {name: scope for name, scope in catalog.scopes.items() if isinstance(scope, DatabaseScope)}


@pytest.fixture(scope="module")
def database_engine(vault_root: hvac.Client, vault_synced: list[str]) -> Iterator[None]:
    """What the database operator sets up once: the engine, its connection (with the username template), the role."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id int)")
    try:
        vault_root.sys.enable_secrets_engine("database", path="database")
    except InvalidRequest:
        pass  # another module of this session set it up
    vault_root.write_data(
        "database/config/jit-pg",
        data={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@{PG_HOST}/test?sslmode=disable",
            "username": "postgres",
            "password": "unused-with-trust-auth",
            "allowed_roles": "jit-*",
            # The DB user's name carries the request ID (the reader token's display name), so PostgreSQL's own
            # logs and pg_stat_activity name the grant.
            "username_template": '{{printf "jit_%s_%s" (.DisplayName | replace "token-" "" | lowercase) (random 6 | lowercase) | truncate 63}}',
        },
    )
    vault_root.write_data(
        f"database/roles/{ROLE}",
        data={
            "db_name": "jit-pg",
            "creation_statements": CREATION,
            "revocation_statements": REVOCATION,
            "default_ttl": "2h",  # the shipped scope's longest total
            "max_ttl": "2h",
        },
    )
    sync_database(vault_root, shipped_database_scopes())  # what the session's `vault sync` wrote: no other cap
    yield
    for attempt in range(20):  # a lease still being revoked may REVOKE on the table at this very moment
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f"DROP TABLE IF EXISTS {TABLE}")
            return
        except psycopg.errors.InternalError:
            time.sleep(0.1 * (attempt + 1))


@pytest.fixture
def bot(openbao: OpenBaoDevServer, bot_vault_token: str, database_engine: None) -> hvac.Client:
    return vault_client(openbao.addr, bot_vault_token)


def _unwrap(openbao: OpenBaoDevServer, issued: IssuedDatabaseCredential) -> dict[str, str]:
    person = vault_client(openbao.addr, issued.wrapping_token)  # as the person does with `bao unwrap`
    unwrapped = person.sys.unwrap()
    assert unwrapped["lease_duration"] >= 2 * 3600  # the lease says longer: the reader token is what ends it
    data: dict[str, str] = unwrapped["data"]
    return data


def _open_locked_session(creds: dict[str, str]) -> psycopg.Connection:
    session = psycopg.connect(f"postgresql://{PG_HOST}/test", user=creds["username"], password=creds["password"])
    session.execute(f"LOCK TABLE {TABLE} IN ACCESS SHARE MODE")  # inside the open transaction: held until it ends
    return session


def _admin_rows(query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        return admin.execute(query, params).fetchall()  # type: ignore[arg-type]


def _role_exists(name: str) -> bool:
    return bool(_admin_rows("SELECT 1 FROM pg_roles WHERE rolname = %s", name))


def _sessions_of(name: str) -> int:
    return len(_admin_rows("SELECT pid FROM pg_stat_activity WHERE usename = %s", name))


def _wait_until_gone(name: str, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if not _role_exists(name) and _sessions_of(name) == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"role {name} still exists or has sessions after {within}s")


def _session_is_dead(session: psycopg.Connection) -> bool:
    try:
        session.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_revoking_the_reader_token_ends_the_open_session_and_drops_the_user(openbao: OpenBaoDevServer, bot: hvac.Client) -> None:
    request_id = new_request_id()
    issued = issue_database_credential(bot, ROLE, timedelta(minutes=10), request_id, "U0REQ001", "orders-db-read")
    creds = _unwrap(openbao, issued)
    assert creds["username"].startswith(f"jit_{request_id.lower()}_")  # the DB's logs name the grant
    session = _open_locked_session(creds)
    locks = _admin_rows(
        "SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.usename = %s AND l.relation = %s::regclass",
        creds["username"],
        TABLE,
    )
    assert locks == [("AccessShareLock",)]
    bot.auth.token.revoke_accessor(issued.accessor)
    _wait_until_gone(creds["username"], within=10)
    assert _session_is_dead(session)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://{PG_HOST}/test", user=creds["username"], password=creds["password"])


def test_on_expiry_vault_itself_ends_the_session_even_with_the_bot_gone(openbao: OpenBaoDevServer, bot: hvac.Client) -> None:
    issued = issue_database_credential(bot, ROLE, timedelta(seconds=5), new_request_id(), "U0REQ001", "orders-db-read")
    creds = _unwrap(openbao, issued)
    session = _open_locked_session(creds)
    assert _sessions_of(creds["username"]) == 1
    # Nobody revokes anything: the reader token's TTL (real time, the thing under test) ends the lease.
    _wait_until_gone(creds["username"], within=25)
    assert _session_is_dead(session)


def test_the_bot_cannot_read_credentials_itself_nor_unwrapped(
    openbao: OpenBaoDevServer, bot: hvac.Client, vault_root: hvac.Client
) -> None:
    with pytest.raises(hvac.exceptions.Forbidden):
        bot.read(f"database/creds/{ROLE}")  # the bot's own token holds no creds path
    reader = vault_root.auth.token.create(
        role_name="jitbot-orders-db-read", policies=[f"jitbot-dbread-{ROLE}"], no_default_policy=True, ttl="60s"
    )["auth"]
    with pytest.raises(hvac.exceptions.Forbidden):
        vault_client(openbao.addr, reader["client_token"]).read(f"database/creds/{ROLE}")  # min_wrapping_ttl refuses
    vault_root.auth.token.revoke_accessor(reader["accessor"])


def _readers_of(vault_root: hvac.Client, request_id: str) -> list[str]:
    accessors = vault_root.list("auth/token/accessors")["data"]["keys"]
    return [
        a for a in accessors if (vault_root.auth.token.lookup_accessor(a)["data"]["meta"] or {}).get("request_id") == request_id
    ]


def test_a_failed_read_leaves_no_reader_token_behind(bot: hvac.Client, vault_root: hvac.Client) -> None:
    with pytest.raises(CredentialError, match="refused the database credentials"):  # the reader exists, its read fails
        issue_database_credential(
            bot, ROLE, timedelta(minutes=5), "JIT-NOROLE00", "U0REQ001", "orders-db-read", mount="no-such-mount"
        )
    assert _readers_of(vault_root, "JIT-NOROLE00") == []


def test_the_bot_cannot_create_a_reader_token_unwrapped_on_any_path(bot: hvac.Client, vault_root: hvac.Client) -> None:
    """docs/security.md promises wrapping on every create path: the scope's reader role and the old shared one alike."""
    vault_root.write_data("auth/token/roles/jitbot-database", data={"allowed_policies": [f"jitbot-dbread-{ROLE}"]})
    for role in ("jitbot-orders-db-read", "jitbot-database"):  # an upgraded Vault may still hold the old role
        with pytest.raises(hvac.exceptions.Forbidden):
            bot.auth.token.create(
                role_name=role,
                policies=[f"jitbot-dbread-{ROLE}"],
                no_default_policy=True,
                ttl="60s",
                renewable=False,
                meta={"request_id": "JIT-UNWRAP00"},
            )
    assert _readers_of(vault_root, "JIT-UNWRAP00") == []
    assert any("jitbot-database: deleted" in line for line in sync_database(vault_root, shipped_database_scopes()))
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault_root.auth.token.read_role("jitbot-database")


def test_each_database_scope_has_its_own_reader_role_and_a_capped_ttl_is_refused(
    bot: hvac.Client, vault_root: hvac.Client
) -> None:
    """One role per database scope, capped at that scope's own longest total: a stolen bot token cannot stretch a short
    scope's reader to the longest database scope's cap, nor read another scope's database role through it."""
    short = {**DB_SCOPE, "database_role": "jit-orders-short", "max_duration": "30m", "max_total_duration": "30m"}
    lines = sync_database(
        vault_root, {"orders-db-short": parse_catalog({"scopes": {"orders-db-short": short}}).scopes["orders-db-short"]}
    )
    assert "token role jitbot-orders-db-short: created (policies jitbot-dbread-jit-orders-short; max TTL 1800s)" in lines
    role = vault_root.auth.token.read_role("jitbot-orders-db-short")["data"]
    assert role["allowed_policies"] == ["jitbot-dbread-jit-orders-short"] and role["token_explicit_max_ttl"] == 1800
    with pytest.raises(InvalidRequest, match="subset"):
        bot.auth.token.create(
            role_name="jitbot-orders-db-short",
            policies=[f"jitbot-dbread-{ROLE}"],
            no_default_policy=True,
            ttl="60s",
            renewable=False,
            wrap_ttl="30s",
        )
    # Asked for 2h through a role capped at 30m: Vault would silently grant 30m; the bot refuses and leaves nothing.
    with pytest.raises(CredentialError, match=r"instead of 7200s.*caps it"):
        issue_database_credential(bot, "jit-orders-short", timedelta(hours=2), "JIT-CAPPED00", "U0REQ001", "orders-db-short")
    assert _readers_of(vault_root, "JIT-CAPPED00") == []


def test_sync_warns_about_roles_that_would_not_end_sessions_or_end_too_soon(
    vault_root: hvac.Client, database_engine: None
) -> None:
    assert database_role_warnings(vault_root, ROLE, timedelta(hours=2)) == []
    longer = database_role_warnings(vault_root, ROLE, timedelta(hours=1))  # 2h leases for a 1h scope
    assert len(longer) == 2 and all("longer than the scopes' longest total (3600s)" in w for w in longer), longer
    vault_root.write_data(
        "database/roles/jit-weak",
        data={
            "db_name": "jit-pg",
            "creation_statements": CREATION,
            "revocation_statements": ['DROP ROLE "{{name}}";'],
            "default_ttl": "10m",
            "max_ttl": "30m",
        },
    )
    warnings = database_role_warnings(vault_root, "jit-weak", timedelta(hours=1))
    assert any("do not end open sessions" in w and "has none" in w for w in warnings)
    assert any("NOLOGIN" in w for w in warnings)
    assert any("default_ttl is 600s" in w for w in warnings) and any("max_ttl is 1800s" in w for w in warnings)
    racy = ['ALTER ROLE "{{name}}" NOLOGIN;', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity;", 'DROP ROLE "{{name}}";']
    vault_root.write_data(
        "database/roles/jit-weak", data={"db_name": "jit-pg", "creation_statements": CREATION, "revocation_statements": racy}
    )
    assert any("one-argument form" in w for w in database_role_warnings(vault_root, "jit-weak", timedelta(hours=1)))
    assert "does not exist" in database_role_warnings(vault_root, "jit-missing", timedelta(hours=1))[0]
    lines = sync_database(vault_root, shipped_database_scopes())
    assert "policy jitbot-dbread-jit-orders-read: unchanged" in lines and "token role jitbot-orders-db-read: unchanged" in lines
    assert vault_root.read("database/config/jit-pg")["data"]["allowed_roles"] == ["jit-*"]  # the operator's config, untouched


def test_the_database_kind_behind_the_seam_issues_and_revokes_by_accessor(openbao: OpenBaoDevServer, bot: hvac.Client) -> None:
    catalog = parse_catalog({"scopes": {"orders-db-read": DB_SCOPE}})
    kinds = credential_kinds(VaultSession(bot))
    request_id = new_request_id()
    until = datetime.now(UTC) + timedelta(minutes=10)
    order = IssueOrder(request_id, "orders-db-read", "U0REQ001", timedelta(minutes=10), until)
    issued = kinds.issue(order, catalog.scopes["orders-db-read"])
    assert issued.handle.kind == "database" and issued.valid_until == until
    # The handle names the login's own lease (the wrapping token's lease beside it is no login), so a revoke waits for it.
    assert parts(issued.handle)[1].startswith("database/creds/jit-orders-read/") and not parts(issued.handle)[1].endswith("/")
    assert issued.delivery.secret and issued.delivery.code == f"bao unwrap {issued.delivery.secret}"
    assert any("psql -h db.staging -d orders" in line for line in issued.delivery.lines)
    assert issued.delivery.secret not in repr(issued)  # never in logs
    assert issued.wrapping is not None and kinds.wrap_status(issued.wrapping.accessor) is CredentialStatus.ALIVE
    creds = _unwrap(openbao, IssuedDatabaseCredential(issued.handle.id, issued.delivery.secret, timedelta(minutes=5)))
    session = _open_locked_session(creds)
    assert kinds.wrap_status(issued.wrapping.accessor) is CredentialStatus.GONE  # unwrapped: its person has it
    assert kinds.status(issued.handle, request_id) is CredentialStatus.ALIVE
    with pytest.raises(ForeignCredential):
        kinds.revoke(issued.handle, "JIT-SOMEONE0")  # a row pointing at another grant's reader token
    assert _sessions_of(creds["username"]) == 1
    kinds.revoke(issued.handle, request_id)
    _wait_until_gone(creds["username"], within=10)
    assert _session_is_dead(session)
    assert kinds.status(issued.handle, request_id) is CredentialStatus.GONE
    kinds.revoke(issued.handle, request_id)  # already gone is success


def test_an_extension_after_a_backward_clock_jump_never_outlives_the_approved_total(bot: hvac.Client) -> None:
    """The bot's clock jumped 20 minutes back between issue and extension: by its reckoning 35m are left, by Vault's
    (the old reader token's remaining TTL) 10m plus the 5m added. The new reader token, whose TTL ends the login,
    gets Vault's reckoning."""
    catalog = parse_catalog({"scopes": {"orders-db-read": DB_SCOPE}})
    kinds = credential_kinds(VaultSession(bot))
    scope = catalog.scopes["orders-db-read"]
    request_id = new_request_id()
    order = IssueOrder(request_id, "orders-db-read", "U0REQ001", timedelta(minutes=10), datetime.now(UTC) + timedelta(minutes=10))
    first = kinds.issue(order, scope)
    wrong_now, until = datetime.now(UTC) - timedelta(minutes=20), order.until + timedelta(minutes=5)
    extended = kinds.extend(
        first.handle, replace(order, ttl=until - wrong_now, until=until, extends_by=timedelta(minutes=5)), scope
    )
    ttl = bot.auth.token.lookup_accessor(parts(extended.handle)[0].id)["data"]["ttl"]
    assert 14 * 60 <= ttl <= 15 * 60
    for handle in (first.handle, extended.handle):
        kinds.revoke(handle, request_id)


def test_a_reader_token_naming_the_request_only_in_its_metadata_is_never_revoked(
    bot: hvac.Client, vault_root: hvac.Client
) -> None:
    """The database kind checks both marks too: the request in the metadata and the reader's display name (the ID)."""
    kinds = credential_kinds(VaultSession(bot))
    rid = new_request_id()
    for name, meta in ((f"jitbot-{rid}", rid), (rid, "JIT-SOMEONE0")):  # one mark right, the other wrong
        token = vault_root.auth.token.create(policies=["default"], ttl="1h", display_name=name, meta={"request_id": meta})["auth"]
        handle = CredentialHandle("database", token["accessor"])
        with pytest.raises(ForeignCredential):
            kinds.revoke(handle, rid)
        assert vault_root.auth.token.lookup(token["client_token"])["data"]["accessor"] == token["accessor"]
        vault_root.auth.token.revoke_accessor(token["accessor"])


@pytest.mark.parametrize("wrap_seconds", [900, int(MAX_WRAP_TTL.total_seconds())])
def test_a_longer_wrap_ttl_issues_database_grants_through_the_synced_policies(
    openbao: OpenBaoDevServer, bot: hvac.Client, vault_root: hvac.Client, wrap_seconds: int
) -> None:
    """JITBOT_WRAP_TTL=900 (or its maximum) on the bot, against what the session's `vault sync` wrote without it: the
    reader policy used to cap wrapping at 300 s, and every database grant failed with permission denied."""
    kinds = credential_kinds(VaultSession(bot), wrap_ttl=timedelta(seconds=wrap_seconds))  # as the wiring builds them
    scope = parse_catalog({"scopes": {"orders-db-read": DB_SCOPE}}).scopes["orders-db-read"]
    request_id = new_request_id()
    order = IssueOrder(request_id, "orders-db-read", "U0REQ001", timedelta(minutes=10), datetime.now(UTC) + timedelta(minutes=10))
    issued = kinds.issue(order, scope)
    assert issued.delivery.secret is not None
    assert vault_root.write("sys/wrapping/lookup", token=issued.delivery.secret)["data"]["creation_ttl"] == wrap_seconds
    assert f"within {format_duration(timedelta(seconds=wrap_seconds))}" in issued.delivery.lines[0]
    creds = _unwrap(openbao, IssuedDatabaseCredential(issued.handle.id, issued.delivery.secret, timedelta(seconds=wrap_seconds)))
    psycopg.connect(f"postgresql://{PG_HOST}/test", user=creds["username"], password=creds["password"]).close()
    kinds.revoke(issued.handle, request_id)
    # The bot's own create paths cap wrapping at the same bound: the setting is the only place the wrap TTL is chosen.
    assert f'max_wrapping_ttl = "{int(MAX_WRAP_TTL.total_seconds()) // 3600}h"' in (POLICY_DIR / "jitbot-bot.hcl").read_text()
