"""PostgreSQL with one `jitbot web` and two `jitbot worker` processes, as the Procfile runs them: the whole path works,
and a worker that stops answering (SIGSTOP: a host that vanished) loses its claims to the other after the lease."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest, VaultError

from devkit.processes import ServeProcess
from grants.adapters.kinds.vault_token import grant_display_name, token_role
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine
from grants.audit import AuditQuery, verify
from grants.catalog import load_catalog
from grants.credentials import CredentialHandle
from grants.deadlines import next_wake
from grants.domain import Approval, AuditEvent, Grant, Request, State, new_request_id
from grants.lifecycle import Event
from tests.conftest import REQUESTER, USERS, SettlingClient, process_env
from tests.databases import fresh_database
from tests.e2e.test_outbox_processes import events, rows, wait_until
from tests.e2e.test_processes import grant
from tests.tcp_proxy import FreezableProxy

LEASE = 3  # seconds (JITBOT_OUTBOX_LEASE): how long a stopped worker's claims hold
SCOPE = "db-admin-staging"


@pytest.fixture
def pg(tmp_path, openbao, bot_vault_token):
    with (
        fresh_database("postgresql", tmp_path) as url,
        process_env(tmp_path, openbao.addr, bot_vault_token, db_url=url, JITBOT_OUTBOX_LEASE=LEASE) as env,
    ):
        yield env


def start(env: dict[str, str], tmp_path, role: str, name: str, **overrides: str) -> ServeProcess:
    return ServeProcess({**env, **overrides}, tmp_path / f"{name}.log", role=role).start()


def claims_of(db_url: str, worker: ServeProcess) -> int:
    """Request rows this worker process holds a lease on now (worker names start with host-pid)."""
    return rows(db_url, "SELECT count(*) FROM requests WHERE claimed_by LIKE :p", p=f"%-{worker.pid}-%")[0][0]


def test_one_web_and_two_workers_carry_requests_clicks_revokes_and_expiries(pg, tmp_path, openbao, vault_root):
    slack, env = pg
    workers = [start(env, tmp_path, "worker", f"worker-{i}") for i in range(2)]
    web = start(env, tmp_path, "web", "web")
    try:
        status, health = web.health()
        assert status == 200 and health["role"] == "web" and "scheduler" not in health, health  # it runs no due work
        for worker in workers:
            status, health = worker.health()
            assert status == 200 and health["role"] == "worker" and health["scheduler"] == "ok", health
            with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:
                assert b"jitbot_" in response.read()
        # A request acked by the web process, the click's work claimed by a worker, the credential delivered.
        rid, _, token = grant(slack, web, "payments-read 30m INC-7 through web and workers", openbao.addr)
        client = SettlingClient(web, slack)
        assert client.slash(REQUESTER, f"revoke {rid}")[0] == 200
        wait_until(lambda: "revoked" in [e for e, _ in events(env["DATABASE_URL"], rid)], 20, "the revoke")
        with pytest.raises(Forbidden):
            hvac.Client(url=openbao.addr, token=token).auth.token.lookup_self()
        wait_until(lambda: [m for m in slack.dm_messages(REQUESTER) if rid in m["text"] and "was revoked by" in m["text"]],
                   20, "the holder told")  # fmt: skip
        # An expiry: whichever worker claims the due row revokes and records it, once.
        short, _, _ = grant(slack, web, f"{SCOPE} 10s INC-8 a short one", openbao.addr)
        expired = wait_until(lambda: [d for e, d in events(env["DATABASE_URL"], short) if e == "expired"], 30, "the expiry")
        assert len(expired) == 1 and expired[0]["lag_seconds"] < 2, expired
    finally:
        web.stop()
        for worker in workers:
            worker.stop()


def test_a_stopped_worker_loses_its_claim_after_the_lease_and_another_worker_ends_the_grant(pg, tmp_path, openbao):
    slack, env = pg
    db_url = env["DATABASE_URL"]
    vault = urlparse(openbao.addr)
    with FreezableProxy((vault.hostname or "", vault.port or 0)) as proxy:
        web = start(env, tmp_path, "web", "web")
        first = start(env, tmp_path, "worker", "worker-1", VAULT_ADDR=f"http://127.0.0.1:{proxy.port}")
        second = None
        try:
            rid, _, token = grant(slack, web, f"{SCOPE} 10s INC-9 ends while its worker hangs", openbao.addr)
            proxy.freeze()  # the first worker's Vault calls hang: it claims the due row and holds it
            wait_until(lambda: claims_of(db_url, first) == 1, 30, "the first worker holding the due grant")
            first.pause()  # SIGSTOP: its lease is no longer renewed
            stopped = time.monotonic()
            second = start(env, tmp_path, "worker", "worker-2")
            expired = wait_until(lambda: [d for e, d in events(db_url, rid) if e == "expired"], 30, "the takeover")
            took = time.monotonic() - stopped
            with pytest.raises(Forbidden):
                hvac.Client(url=openbao.addr, token=token).auth.token.lookup_self()
            proxy.thaw()
            first.resume()  # its hung revoke goes on: the token is gone, its compare-and-swap loses, nothing changes
            time.sleep(LEASE + 1)
            names = [e for e, _ in events(db_url, rid)]
            assert names.count("expired") == 1 and "revoke_failed" not in names, names
            assert first.health()[0] == 200  # awake again, and a worker like the other
        finally:
            proxy.thaw()
            web.stop()
            first.stop()
            if second is not None:
                second.stop()
    assert took < LEASE + 5 + 5, f"taken over {took:.1f} s after the stop"  # lease, a poll, the start of the second
    print(f"\nthe stopped worker's grant ended {took:.1f} s after SIGSTOP (lease {LEASE} s), lag {expired[0]['lag_seconds']} s")


def seed_grants(db_url: str, catalog_path, bot_token: str, vault_addr: str, ends: list[datetime]) -> list[Request]:
    """Active grants with real tokens made as the bot makes them (its role, display name, metadata), written with
    their `issued` events through the store, so the trail verifies and revocation finds the audited accessor."""
    scope = load_catalog(Path(catalog_path)).scopes[SCOPE]
    client = hvac.Client(url=vault_addr, token=bot_token)
    now = datetime.now(UTC)

    def token(request_id: str) -> str:
        response = client.auth.token.create(
            role_name=token_role(SCOPE), policies=[SCOPE], ttl="10m", explicit_max_ttl="10m", renewable=False,
            display_name=grant_display_name(request_id), meta={"request_id": request_id, "requester": "U0G", "scope": SCOPE},
            wrap_ttl="60s",
        )  # fmt: skip
        return str(response["wrap_info"]["wrapped_accessor"])

    ids = [new_request_id() for _ in ends]
    with ThreadPoolExecutor(8) as pool:
        accessors = list(pool.map(token, ids))
    engine = make_engine(db_url)
    upgrade(engine)
    store = SqlStore(engine)
    grants = []
    for index, (request_id, accessor, end) in enumerate(zip(ids, accessors, ends, strict=True)):
        made = Request(
            id=request_id, scope=SCOPE, requester=f"U0G{index:06d}", duration=end - now, reason="seeded", state=State.ACTIVE,
            created_at=now, pending_until=now + timedelta(hours=1),
            approval=Approval(given=("U0APPR001",), decided_by="U0APPR001", decided_at=now),
            grant=Grant(CredentialHandle("vault_token", accessor), now, end), version=2,
        )  # fmt: skip
        made = replace(made, wake_at=next_wake(scope, made))
        event = AuditEvent(event=Event.ISSUED, at=now, actor="system", request_id=request_id, scope=SCOPE,
                           subject=made.requester, detail={"accessor": accessor, "kind": "vault_token"})  # fmt: skip
        store.commit(made, event)
        grants.append(made)
    store.close()
    return grants


SEEDED = {f"U0G{index:06d}": f"g{index}" for index in range(500)}  # the seeded grants' holders, known to Slack


@pytest.fixture
def pg_many(tmp_path, openbao, bot_vault_token):
    with (
        fresh_database("postgresql", tmp_path) as url,
        process_env(tmp_path, openbao.addr, bot_vault_token, db_url=url, users=USERS | SEEDED, JITBOT_OUTBOX_LEASE=LEASE) as env,
    ):
        yield env


@pytest.mark.timeout(300)  # 40 s of lead and 30 s of spread by design; the seeding and the checks on 500 grants add more
def test_one_of_two_workers_stopped_while_500_grants_fall_due_every_one_ends_once_on_time(pg_many, tmp_path, openbao, vault_root):
    slack, env = pg_many
    db_url = env["DATABASE_URL"]
    count, spread = len(SEEDED), 30.0  # 500 grants falling due over 30 s, about 17 a second
    start_at = datetime.now(UTC) + timedelta(seconds=40)  # after seeding and start-up on a slow machine
    ends = [start_at + timedelta(seconds=spread * i / count) for i in range(count)]
    grants = seed_grants(db_url, env["JITBOT_CATALOG"], env["VAULT_TOKEN"], openbao.addr, ends)
    assert datetime.now(UTC) < start_at - timedelta(seconds=8), "seeding took too long for this schedule"
    workers = [start(env, tmp_path, "worker", f"worker-{i}") for i in range(2)]
    try:
        wait_until(lambda: claims_of(db_url, workers[0]) > 0, 60, "the first worker claiming due grants")
        workers[0].pause()  # its host vanished mid-burst, holding what it had claimed
        stopped = time.monotonic()
        held = claims_of(db_url, workers[0])
        wait_until(lambda: rows(db_url, "SELECT count(*) FROM requests WHERE state = 'expired'")[0][0] == count,
                   spread + 60, "every grant ended")  # fmt: skip
        took = time.monotonic() - stopped
        workers[0].resume()  # back: its claims are gone, its compare-and-swaps lose
        time.sleep(LEASE + 1)
        trail = rows(db_url, "SELECT event, request_id, at, detail FROM audit_events ORDER BY seq")
    finally:
        for worker in workers:
            worker.stop()
    expired = [(rid, at, json.loads(detail)) for event, rid, at, detail in trail if event == "expired"]
    assert Counter(rid for rid, _, _ in expired) == {g.id: 1 for g in grants}  # each exactly once, none left
    assert not [row for row in trail if row[0] == "revoke_failed"]
    end_of = {g.id: g.grant.expires_at for g in grants if g.grant}
    late = sorted(((at - end_of[rid]).total_seconds() for rid, at, _ in expired), reverse=True)
    assert late[0] <= LEASE + 5, f"recorded {late[0]:.2f} s after its end (lease {LEASE} s + 5 s allowed)"
    root = hvac.Client(url=openbao.addr, token=vault_root.token)
    alive = 0
    for grant_ in grants:
        try:
            root.auth.token.lookup_accessor(grant_.grant.handle.id if grant_.grant else "")
            alive += 1
        except (InvalidRequest, Forbidden, VaultError):
            pass
    assert alive == 0, f"{alive} tokens outlived their grants"
    engine = make_engine(db_url)
    assert verify(SqlStore(engine).events(AuditQuery())).intact
    engine.dispose()
    print(
        f"\n{count} grants due over {spread:g} s, one of two workers stopped holding {held} claims: all ended once; "
        f"recorded after their end: max {late[0]:.2f} s, p50 {late[len(late) // 2]:.2f} s (lease {LEASE} s); "
        f"the last ended {took:.1f} s after the stop"
    )
