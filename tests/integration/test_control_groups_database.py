"""approval = "vault" on a database scope, on real OpenBao, real PostgreSQL logins and both stores: the reader token's
create is held by a control group from the request on; the bot's token gets no reader and so no login; two approvers'
own identities release exactly one login, which ends on revoke and on time; a second release fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import text

from bot.wiring import migrate_engine
from devkit.openbao import OpenBaoDevServer
from grants.adapters.sql_store import SqlStore, make_engine
from grants.audit import AuditQuery
from grants.catalog import load_catalog
from grants.credentials import CredentialError, IssuedCredential
from grants.domain import NotAllowed, Request, State
from grants.service import ElevationService
from grants.signin import SignIn
from grants.usecases import granting
from tests.fakes import FakeClock, FakeNotifier, FakeTimer
from tests.integration.test_kind_database import _role_exists, _session_is_dead, _wait_until_gone
from tests.vault_approval import APPROVER_1, APPROVER_2, REQUESTER, VaultApprovals, catalog_dir, start
from tests.vault_database import DB_TOML, ROLE, SCOPE, TABLE, database_engine, drop_table, leases, login


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VaultApprovals, Path]]:
    with OpenBaoDevServer() as server:
        world = start(server)
        database_engine(world)
        for person in (APPROVER_1, APPROVER_2, REQUESTER):
            world.link(person)
        policies = catalog_dir(tmp_path_factory.mktemp("cg-db"), extra=DB_TOML)
        _, lines = world.sync(policies)  # `jitbot check` accepts it: load_catalog raised nothing
        assert not [line for line in lines if ROLE in line and line.startswith(("error", "warning"))], lines
        yield world, policies
    drop_table()


class Delivered(FakeNotifier):
    wrapping: dict[str, str]

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None:
        super().deliver_credential(request, credential)
        self.wrapping[request.id] = str(credential.delivery.secret)


@pytest.fixture
def bot(vault: tuple[VaultApprovals, Path], db_url: str) -> Iterator[tuple[ElevationService, Delivered, str, FakeClock]]:
    world, policies = vault
    token = world.bot_token()
    gates, kinds = world.gates(token)
    engine = make_engine(db_url)
    migrate_engine(engine)
    store = SqlStore(engine)
    clock = FakeClock(datetime.now(UTC))
    notifier = Delivered()
    notifier.wrapping = {}
    service = ElevationService(load_catalog(policies / "catalog.toml"), store, kinds, notifier, FakeTimer(clock), clock)  # type: ignore[arg-type]
    service.deps.control_groups = gates
    yield service, notifier, token, clock
    store.close()


def authorize(world: VaultApprovals, service: ElevationService, who: str, request_id: str) -> Request:
    """What the step-up page does once the person signed in: authorize with their own token, then approve in the core."""
    assert service.deps.control_groups is not None
    service.deps.control_groups.authorize(request_id, world.login(who))  # type: ignore[attr-defined]
    evidence = SignIn(who, world.entities[who], world.addr, world.entities[who], datetime.now(UTC), "totp")
    return service.approve(request_id, who, evidence)


def unwrap(addr: str, wrapping: str) -> requests.Response:
    return requests.post(f"{addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": wrapping}, timeout=10)


def held_token(world: VaultApprovals, request_id: str) -> str:
    read = world.root.secrets.kv.v2.read_secret_version(
        path=f"jitbot/control-groups/{request_id}", mount_point="secret", raise_on_deleted_version=True
    )
    return str(read["data"]["data"]["token"])


def approved_login(
    world: VaultApprovals, service: ElevationService, notifier: Delivered, duration: str
) -> tuple[Request, dict[str, str]]:
    request = service.request(REQUESTER, SCOPE, duration, "INC-77 count stuck orders")
    assert authorize(world, service, APPROVER_1, request.id).state is State.PENDING
    assert request.id not in notifier.wrapping  # one approver releases nothing
    active = authorize(world, service, APPROVER_2, request.id)
    assert active.state is State.ACTIVE
    creds: dict[str, str] = unwrap(world.addr, notifier.wrapping[request.id]).json()["data"]
    return active, creds


def test_two_approvers_release_one_working_login_that_ends_at_expiry(vault, bot):
    world, _ = vault
    service, notifier, _, clock = bot
    before = leases(world)
    request = service.request(REQUESTER, SCOPE, "30m", "INC-77 count stuck orders")
    cg_token = held_token(world, request.id)
    assert unwrap(world.addr, cg_token).status_code == 400  # nobody authorized: nothing comes out (and not consumed)
    assert not leases(world) - before  # no login exists while the request waits
    assert authorize(world, service, APPROVER_1, request.id).state is State.PENDING
    assert request.id not in notifier.wrapping and not leases(world) - before
    started = time.monotonic()
    active = authorize(world, service, APPROVER_2, request.id)
    released_in = time.monotonic() - started
    assert active.state is State.ACTIVE
    login_leases = leases(world) - before
    assert len(login_leases) == 1  # one approval, one login
    assert active.grant.handle.id.endswith(f"@database/creds/{ROLE}/{login_leases.pop()}")  # type: ignore[union-attr]
    creds = unwrap(world.addr, notifier.wrapping[request.id]).json()["data"]
    assert creds["username"].startswith(f"jit_{request.id.lower()}_")  # the database's logs name the grant
    with login(creds) as session:
        assert session.execute(f"SELECT id FROM {TABLE}").fetchall() == [(7,)]
    # The reader token Vault created at the release: exactly the grant's time, this request's, not renewable.
    reader = world.root.auth.token.lookup_accessor(active.grant.handle.id.split("@")[0])["data"]  # type: ignore[union-attr]
    assert 1790 < reader["ttl"] <= 1800 and not reader["renewable"] and reader["meta"]["request_id"] == request.id
    assert reader["policies"] == ["jitbot-dbread-jit-cg-orders"]
    assert unwrap(world.addr, notifier.wrapping[request.id]).status_code == 400  # the DM's wrap is single use
    # Pitfall (b): Vault would create a new reader (a new login) on every unwrap; jitbot revoked the request's token.
    assert unwrap(world.addr, cg_token).status_code == 400
    with pytest.raises(CredentialError):
        service.deps.control_groups.release(request.id)  # type: ignore[union-attr]
    assert len(leases(world) - before) == 1
    session = login(creds)
    session.execute(f"LOCK TABLE {TABLE} IN ACCESS SHARE MODE")  # an open transaction the end must cut
    clock.advance(timedelta(minutes=30, seconds=1))
    service.wake(request.id)
    assert service.get(request.id).state is State.EXPIRED
    # The expiry waited for Vault to revoke the lease: the login and its session are gone when it is recorded.
    assert not _role_exists(creds["username"]) and _session_is_dead(session)
    with pytest.raises(psycopg.OperationalError):
        login(creds)
    trail = [e for e in service.deps.store.events(AuditQuery()) if e.request_id == request.id]
    approvals = [e.detail["sign_in"]["slack_user"] for e in trail if e.event in ("approval_added", "approved")]
    assert approvals == [APPROVER_1, APPROVER_2]
    assert [e.event for e in trail][-1] == "expired"
    print(f"\nrelease (second authorization → login delivered): {released_in * 1000:.0f} ms")


def test_vault_itself_ends_the_released_login_on_time_with_the_bot_gone(vault, bot):
    world, _ = vault
    service, notifier, _, _ = bot
    active, creds = approved_login(world, service, notifier, "4s")
    session = login(creds)
    session.execute(f"LOCK TABLE {TABLE} IN ACCESS SHARE MODE")
    # Nobody revokes: the released reader token's own TTL (real time, the thing under test) ends the lease.
    took = _wait_until_gone(creds["username"], within=25)
    assert _session_is_dead(session)
    print(f"\nlogin gone {took:.1f} s after the first check (grant of 4 s)")
    assert active.grant is not None


def test_an_early_revoke_ends_the_login_and_its_session_before_it_is_recorded(vault, bot):
    world, _ = vault
    service, notifier, _, _ = bot
    active, creds = approved_login(world, service, notifier, "30m")
    session = login(creds)
    session.execute(f"LOCK TABLE {TABLE} IN ACCESS SHARE MODE")
    started = time.monotonic()
    assert service.revoke(active.id, REQUESTER).state is State.REVOKED
    took = time.monotonic() - started
    assert not _role_exists(creds["username"]) and _session_is_dead(session)  # the lease check: really gone
    with pytest.raises(psycopg.OperationalError):
        login(creds)
    print(f"\nrevoke with the lease check: {took * 1000:.0f} ms")


def test_bot_token_and_database_write_access_get_no_login(vault, bot):
    world, _ = vault
    service, notifier, bot_token, _ = bot
    before = leases(world)
    request = service.request(REQUESTER, SCOPE, "30m", "INC-78 count stuck orders")
    # The bot's own token on the guarded create: a pending request, never a reader token (also with a trailing slash).
    for path in (f"auth/token/create/jitbot-{SCOPE}", f"auth/token/create/jitbot-{SCOPE}/"):
        answer = requests.post(
            f"{world.addr}/v1/{path}",
            json={"policies": [f"jitbot-dbread-{ROLE}"], "no_default_policy": True, "ttl": "1h", "renewable": False},
            headers={"X-Vault-Token": bot_token, "X-Vault-Wrap-TTL": "300s"},
            timeout=10,
        ).json()
        assert answer.get("auth") is None
        wrap = answer.get("wrap_info") or {}
        assert not wrap.get("wrapped_accessor"), "the bot's token minted a reader without the approvers"
        assert unwrap(world.addr, wrap["token"]).status_code == 400 if wrap else True
    # Nor can it read the login itself, nor authorize.
    assert (
        requests.get(f"{world.addr}/v1/database/creds/{ROLE}", headers={"X-Vault-Token": bot_token}, timeout=10).status_code
        == 403
    )
    refused = requests.post(
        f"{world.addr}/v1/sys/control-group/authorize",
        json={"accessor": service.deps.control_groups.accessor(request.id)},  # type: ignore[union-attr]
        headers={"X-Vault-Token": bot_token},
        timeout=10,
    )
    assert refused.status_code == 403
    # The insider marks the request approved and lets the bot issue it.
    store = service.deps.store
    with store.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(
            text("UPDATE requests SET state = 'approved', version = version + 1 WHERE id = :id"), {"id": request.id}
        )
    forged = store.get(request.id)
    assert forged is not None and forged.state is State.APPROVED
    assert granting.issue(service.deps, forged).state is State.FAILED
    assert request.id not in notifier.wrapping
    assert [e.event for e in store.events(AuditQuery()) if e.request_id == request.id][-1] == "issue_failed"
    assert not leases(world) - before  # no login was made


def test_one_approver_twice_stays_pending_and_the_requester_cannot_authorize(vault, bot):
    world, _ = vault
    service, notifier, _, _ = bot
    gates = service.deps.control_groups
    request = service.request(REQUESTER, SCOPE, "30m", "INC-79 count stuck orders")
    assert gates.authorize(request.id, world.login(APPROVER_1)) is False  # type: ignore[union-attr]
    with pytest.raises(CredentialError):
        gates.authorize(request.id, world.login(APPROVER_1))  # type: ignore[union-attr]
    assert gates.approved(request.id) is False  # type: ignore[union-attr]
    assert gates.authorize(request.id, world.login(REQUESTER)) is False  # type: ignore[union-attr]
    assert gates.approved(request.id) is False  # type: ignore[union-attr]
    assert unwrap(world.addr, held_token(world, request.id)).status_code == 400
    with pytest.raises(NotAllowed):
        service.check_approve(request.id, REQUESTER)
    assert "rejected" in [e.event for e in service.deps.store.events(AuditQuery()) if e.request_id == request.id]
    service.cancel(request.id, REQUESTER)  # the hold ends with the request
    with pytest.raises(CredentialError):
        gates.accessor(request.id)  # type: ignore[union-attr]


def test_vault_sync_holds_the_reader_create_of_the_scope_only(vault):
    world, _ = vault
    policy = world.root.sys.read_acl_policy("jitbot-bot")["data"]["policy"]
    stanza = policy[policy.index(f'path "auth/token/create/jitbot-{SCOPE}"') :]
    stanza = stanza[: stanza.index("\n}\n")]
    assert 'control_group = {\n    ttl = "4200s"' in stanza and "approvals = 2" in stanza
    assert f'group_names = ["jitbot-approvers-{SCOPE}-1"]' in stanza and "min_wrapping_ttl" not in stanza
    assert 'path "auth/token/create/jitbot-orders-db-read"' not in policy  # a bot-approved database scope: unheld
    reader = world.root.sys.read_acl_policy(f"jitbot-dbread-{ROLE}")["data"]["policy"]
    assert "control_group" not in reader and 'min_wrapping_ttl = "1s"' in reader  # the reader still reads only wrapped
    role = world.root.auth.token.read_role(f"jitbot-{SCOPE}")["data"]
    assert role["allowed_policies"] == [f"jitbot-dbread-{ROLE}"] and role["orphan"]


def test_an_undelivered_login_is_not_replaced_without_a_new_approval(vault, bot):
    world, _ = vault
    service, notifier, _, _ = bot
    request = service.request(REQUESTER, SCOPE, "30m", "INC-81 count stuck orders")
    authorize(world, service, APPROVER_1, request.id)
    active = authorize(world, service, APPROVER_2, request.id)
    assert active.grant is not None
    before = leases(world)
    wrap = world.root.auth.token.lookup(notifier.wrapping[request.id])["data"]  # as if the DM never arrived
    check = {"accessor": active.grant.handle.id, "wrap": wrap["accessor"], "wrap_until": "2999-01-01T00:00:00+00:00"}
    with pytest.raises(CredentialError):
        granting.reissue(service.deps, request.id, check)  # the hold is spent: Vault makes no second reader
    assert leases(world) == before and service.get(request.id).grant == active.grant  # the one login stays
    creds = unwrap(world.addr, notifier.wrapping[request.id]).json()["data"]  # the DM, arriving late, still works
    with login(creds) as session:
        assert session.execute(f"SELECT id FROM {TABLE}").fetchall() == [(7,)]
    service.revoke(request.id, REQUESTER)
    assert not _role_exists(creds["username"])


def test_a_thief_of_the_bot_token_reading_the_hold_gets_nothing_before_approval_and_a_bounded_twin_after(vault, bot):
    """The limit docs/security.md states: the hold is readable by the bot's token, so once approved it unwraps too."""
    world, _ = vault
    service, _, bot_token, _ = bot
    request = service.request(REQUESTER, SCOPE, "30m", "INC-82 count stuck orders")
    hold = requests.get(
        f"{world.addr}/v1/secret/data/jitbot/control-groups/{request.id}", headers={"X-Vault-Token": bot_token}, timeout=10
    ).json()["data"]["data"]["token"]
    assert unwrap(world.addr, hold).status_code == 400  # without the approvers: nothing
    gates = service.deps.control_groups
    gates.authorize(request.id, world.login(APPROVER_1))  # type: ignore[union-attr]
    gates.authorize(request.id, world.login(APPROVER_2))  # type: ignore[union-attr]
    twin = unwrap(world.addr, hold).json()["auth"]  # the thief, first
    assert twin["lease_duration"] <= 1800 and twin["policies"] == [f"jitbot-dbread-{ROLE}"]  # the approved grant's bound
    world.root.auth.token.revoke_accessor(twin["accessor"])
    service.deny(request.id, APPROVER_1, "test over")
