"""A database grant's revoke and expiry with the OpenBao → PostgreSQL path frozen (a relay the test controls): the
login is recorded as ended only once its lease is really gone, on real OpenBao and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import hvac
import psycopg
import pytest

from devkit.openbao import OpenBaoDevServer
from devkit.standin import message_text
from grants.adapters.kinds.database import sync_database
from grants.adapters.kinds.database_kind import DatabaseKind, parts
from grants.adapters.vault_client import vault_client
from grants.catalog import parse_catalog
from grants.credentials import CredentialError, CredentialHandle, CredentialStatus, IssueOrder
from grants.domain import new_request_id
from tests.conftest import APPROVER, REQUESTER, World
from tests.integration.test_kind_database import (
    CREATION,
    DB_SCOPE,
    PG_HOST,
    REVOCATION,
    TABLE,
    _session_is_dead,
    database_engine,  # noqa: F401  (creates TABLE)
)
from tests.tcp_proxy import FreezableProxy

ROLE, SCOPE = "jit-frozen-read", "frozen-db-read"


@pytest.fixture(scope="module")
def relay() -> Iterator[FreezableProxy]:
    with FreezableProxy(("127.0.0.1", int(PG_HOST.rsplit(":", 1)[1]))) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def frozen_role(vault_root: hvac.Client, database_engine: None, relay: FreezableProxy) -> None:  # noqa: F811
    """A connection whose every byte goes through the relay, a role on it, and the scope's reader policy and role."""
    vault_root.write_data(
        "database/config/jit-pg-relayed",
        data={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{relay.port}/test?sslmode=disable",
            "username": "postgres",
            "password": "unused-with-trust-auth",
            "allowed_roles": ROLE,
        },
    )
    vault_root.write_data(
        f"database/roles/{ROLE}",
        data={
            "db_name": "jit-pg-relayed",
            "creation_statements": CREATION,
            "revocation_statements": REVOCATION,
            "default_ttl": "1h",
            "max_ttl": "1h",
        },
    )
    scope = parse_catalog({"scopes": {SCOPE: {**DB_SCOPE, "database_role": ROLE}}}).scopes[SCOPE]
    sync_database(vault_root, {SCOPE: scope})  # type: ignore[dict-item]


@pytest.fixture
def kind(openbao: OpenBaoDevServer, bot_vault_token: str, frozen_role: None, relay: FreezableProxy) -> Iterator[DatabaseKind]:
    relay.thaw()
    bot = vault_client(openbao.addr, bot_vault_token)
    yield DatabaseKind(bot, settle=3.0)
    relay.thaw()


def issue(kind: DatabaseKind, openbao: OpenBaoDevServer, lifetime: timedelta) -> tuple[CredentialHandle, str, dict[str, str]]:
    rid = new_request_id()
    scope = parse_catalog({"scopes": {SCOPE: {**DB_SCOPE, "database_role": ROLE}}}).scopes[SCOPE]
    issued = kind.issue(IssueOrder(rid, SCOPE, "U0REQ001", lifetime, datetime.now(UTC) + lifetime), scope)
    assert issued.delivery.secret is not None
    creds: dict[str, str] = vault_client(openbao.addr, issued.delivery.secret).sys.unwrap()["data"]
    return issued.handle, rid, creds


def login(creds: dict[str, str]) -> psycopg.Connection:
    """The person connects to PostgreSQL directly: only OpenBao's path to it is frozen."""
    return psycopg.connect(f"postgresql://{PG_HOST}/test", user=creds["username"], password=creds["password"])


def reads(session: psycopg.Connection) -> bool:
    try:
        session.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    except psycopg.Error:
        return False
    return True


def test_a_revoke_while_openbao_cannot_reach_postgresql_is_not_done_until_the_lease_is_gone(
    kind: DatabaseKind, openbao: OpenBaoDevServer, relay: FreezableProxy
) -> None:
    handle, rid, creds = issue(kind, openbao, timedelta(minutes=10))
    assert parts(handle)[1].startswith(f"database/creds/{ROLE}/")  # the grant's own lease, kept beside the reader
    session = login(creds)
    relay.freeze()
    with pytest.raises(CredentialError, match="has not revoked the database login yet"):
        kind.revoke(handle, rid)  # the reader token is gone at once; its lease is not
    assert reads(session)  # what the issue saw: the open session still reads...
    login(creds).close()  # ...and a new login with the granted password works
    assert kind.status(handle, rid) is CredentialStatus.ALIVE
    with pytest.raises(CredentialError):
        kind.revoke(handle, rid)  # the retry, still frozen: still not done
    relay.thaw()
    kind.revoke(handle, rid)  # the retry after the path is back: done only now, and only because the lease is gone
    assert _session_is_dead(session)
    with pytest.raises(psycopg.OperationalError):
        login(creds)
    assert kind.status(handle, rid) is CredentialStatus.GONE


def test_an_expiry_while_openbao_cannot_reach_postgresql_is_not_done_until_the_lease_is_gone(
    kind: DatabaseKind, openbao: OpenBaoDevServer, relay: FreezableProxy
) -> None:
    handle, rid, creds = issue(kind, openbao, timedelta(seconds=4))
    session = login(creds)
    relay.freeze()
    reader = parts(handle)[0]
    deadline = time.monotonic() + 30
    while kind._by_accessor.status(reader, rid) is not CredentialStatus.GONE:  # the reader token's real TTL ends it
        assert time.monotonic() < deadline, "the reader token outlived its TTL"
        time.sleep(0.2)
    with pytest.raises(CredentialError, match="has not revoked the database login yet"):
        kind.revoke(handle, rid)  # the expiry's revoke: the token is gone by its TTL, the login is not
    assert reads(session)
    login(creds).close()  # after the grant's end: this is what must not be recorded as expired
    relay.thaw()
    kind.revoke(handle, rid)
    assert _session_is_dead(session)
    with pytest.raises(psycopg.OperationalError):
        login(creds)


def test_a_grant_issued_beside_another_read_of_its_role_waits_for_the_roles_pending_leases(
    kind: DatabaseKind, openbao: OpenBaoDevServer, relay: FreezableProxy
) -> None:
    """Another process read the same role at the same moment: the handle keeps the role's prefix, and a revoke is
    done only when no lease of the role waits for its revocation (later than needed, never wrongly)."""
    handle, rid, creds = issue(kind, openbao, timedelta(minutes=10))
    reader, _ = parts(handle)
    ambiguous = CredentialHandle("database", f"{reader.id}@database/creds/{ROLE}/")
    other_handle, other_rid, _ = issue(kind, openbao, timedelta(minutes=10))  # alive: not waited for
    session = login(creds)
    relay.freeze()
    with pytest.raises(CredentialError, match="has not revoked"):
        kind.revoke(ambiguous, rid)
    relay.thaw()
    kind.revoke(ambiguous, rid)
    assert _session_is_dead(session)
    kind.revoke(other_handle, other_rid)


ALERTS = "C0ALERTS1"
FROZEN_SCOPE = f"""[scopes.{SCOPE}]
description = "Read orders through a relay the test freezes"
credential = "database"
database_role = "{ROLE}"
max_duration = "2h"
requesters = ["group:developers"]
approvers = ["group:db-oncall"]

[scopes.web-ssh]"""


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    return {'alert_channel = ""': f'alert_channel = "{ALERTS}"', "[scopes.web-ssh]": FROZEN_SCOPE}


def test_the_bot_records_revoke_failed_alerts_and_retries_until_the_login_is_gone(
    world: World, frozen_role: None, relay: FreezableProxy
) -> None:
    """Through signed Slack requests: `/elevate revoke` with OpenBao cut off from PostgreSQL is `revoke_failed`, an
    alert and a retry, never `revoked` while the login works; once the path is back, the retry ends it."""
    relay.thaw()
    status, body = world.client.slash(REQUESTER, f"{SCOPE} 30m INC-9 check the relay")
    assert status == 200 and "Request `JIT-" in body["text"], body
    rid = body["text"].split("`")[1]
    world.slack.wait_for(lambda: world.slack.find_message(lambda m: rid in message_text(m) and "Approve" in message_text(m)))
    assert world.client.click(APPROVER, "approve", rid)[0] == 200
    creds = vault_client(world.vault_addr, world.wrapping_token(REQUESTER, rid)).sys.unwrap()["data"]
    session = login(creds)
    relay.freeze()
    try:
        assert world.client.slash(REQUESTER, f"revoke {rid}")[0] == 200
        world.wait_audit(rid, "revoke_failed", timeout=40)
        assert not {"revoked", "expired"} & set(world.audit_names(rid))
        assert reads(session)  # and the trail does not say otherwise
        login(creds).close()
        world.slack.wait_for(lambda: any(rid in message_text(m) for m in world.slack.messages_in(ALERTS)))
    finally:
        relay.thaw()
    # The retry, after its backoff: a failed early revoke moved the grant's end to now; the retry still ends it as
    # revoked by its holder (the trail keeps who ended the access).
    deadline = time.monotonic() + 60
    while not {"revoked", "expired"} & set(world.audit_names(rid)):
        assert time.monotonic() < deadline, world.audit_names(rid)
        time.sleep(0.1)
    assert _session_is_dead(session)
    with pytest.raises(psycopg.OperationalError):
        login(creds)
    names = world.audit_names(rid)
    assert names[:4] == ["requested", "approved", "issued", "revoke_failed"] and names[-1] == "revoked", names
    assert "expired" not in names
    assert world.rows(f"SELECT actor FROM audit_events WHERE request_id = '{rid}' AND event = 'revoked'") == [(REQUESTER,)]
