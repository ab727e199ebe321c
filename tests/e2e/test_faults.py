"""Fault tests with real processes: a replica killed while grants come due, Vault stopped, Slack failing, PostgreSQL sessions killed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from devkit.openbao import OpenBaoDevServer
from devkit.processes import ServeProcess
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn, message_text
from grants.adapters.kinds import credential_kinds
from grants.adapters.vault_client import VaultSession, vault_client
from grants.adapters.vault_sync import sync
from grants.catalog import load_catalog
from tests.conftest import (
    APPROVER,
    APPROVER_2,
    BOT_TOKEN,
    REQUESTER,
    USERS,
    SettlingClient,
    local_bot,
    make_catalog_dir,
    serve_env,
)
from tests.databases import PG_ADMIN, fresh_database

ALERTS = "C0ALERTS1"
REQUESTERS = ["U0DEV0001", "U0DEV0002", "U0DEV0003"]


def catalog_with_alerts(tmp_path: Path) -> Path:
    return make_catalog_dir(tmp_path, {'alert_channel = ""': f'alert_channel = "{ALERTS}"'}) / "catalog.toml"


class Trail:
    def __init__(self, db_url: str):
        self.engine = create_engine(db_url)

    def names(self, rid: str) -> list[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT event FROM audit_events WHERE request_id = :r ORDER BY seq"), {"r": rid})
            return [r[0] for r in rows]

    def detail(self, rid: str, event: str) -> str:
        with self.engine.connect() as connection:
            query = text("SELECT detail FROM audit_events WHERE request_id = :r AND event = :e")
            return str(connection.execute(query, {"r": rid, "e": event}).scalar())

    def wait(self, rid: str, event: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while event not in self.names(rid):
            assert time.monotonic() < deadline, f"{rid}: no {event} in {self.names(rid)}"
            time.sleep(0.1)


def request_and_approve(client: SignedSlackClient, slack: SlackStandIn, user: str, text_: str, approver: str = APPROVER) -> str:
    status, body = client.slash(user, text_)
    assert status == 200 and "Request `" in body["text"], body
    rid = body["text"].split("`")[1]
    slack.wait_for(lambda: slack.find_message(lambda m: rid in message_text(m) and "[Approve]" in message_text(m)))
    status, _ = client.click(approver, "approve", rid)
    assert status == 200
    return rid


def test_three_replicas_one_killed_while_grants_come_due_the_others_end_them(tmp_path, openbao, bot_vault_token):
    with fresh_database("postgresql", tmp_path) as db_url, SlackStandIn(BOT_TOKEN, users=USERS) as slack:
        env = serve_env(slack, openbao.addr, bot_vault_token, db_url, make_catalog_dir(tmp_path) / "catalog.toml")
        replicas = [ServeProcess(env, tmp_path / f"replica-{i}.log").start() for i in range(3)]
        trail = Trail(db_url)
        try:
            # Grants approved on every replica, coming due while one of them is dead: no leader to wait for.
            rids = []
            for i, replica in enumerate(replicas):
                client = SettlingClient(replica, slack)
                rids.append(request_and_approve(client, slack, REQUESTERS[i], f"db-admin-staging {3 + i}s replica {i}"))
            for rid in rids:
                trail.wait(rid, "issued")
            replicas[0].kill()
            for rid in rids:
                trail.wait(rid, "expired", timeout=20)
            for rid in rids:
                names = trail.names(rid)
                assert names.count("issued") == 1 and names.count("expired") == 1, names
                lag = float(trail.detail(rid, "expired").split('"lag_seconds":')[1].split(",")[0].rstrip("}"))
                assert lag < 8, (rid, lag)
        finally:
            for replica in replicas:
                replica.stop()
            trail.engine.dispose()


@pytest.fixture
def private_vault():
    """A dev server of our own to stop and start; the bot uses its fixed root token (a dev server forgets
    every other token when it restarts)."""
    with OpenBaoDevServer() as server:
        root = vault_client(server.addr, server.root_token)
        yield server, root


@pytest.fixture
def vault_world(tmp_path, private_vault):
    server, root = private_vault
    catalog = catalog_with_alerts(tmp_path)
    sync(root, catalog.parent, load_catalog(catalog), credential_kinds(VaultSession(root)))
    with (
        SlackStandIn(BOT_TOKEN, users=USERS, strict_users=False) as slack,
        local_bot(tmp_path, server.addr, server.root_token, vault=root, catalog=catalog, slack=slack) as world,
    ):
        trail = Trail(world.db_url)
        yield server, slack, world.bot, world.client, trail
        trail.engine.dispose()


def test_vault_down_at_revocation_is_retried_alerted_and_recorded(vault_world):
    server, slack, bot, client, trail = vault_world
    rid = request_and_approve(client, slack, REQUESTER, "db-admin-staging 2s vault outage")
    trail.wait(rid, "issued")
    server.stop()
    trail.wait(rid, "revoke_failed", timeout=10)
    alert = slack.wait_for(lambda: next((m for m in slack.messages_in(ALERTS) if rid in m["text"]), None))
    assert "Retrying" in alert["text"] and "TTL" in alert["text"]
    assert bot.runtime is not None and bot.runtime.health()["vault"] is False
    assert "expired" not in trail.names(rid)
    server.start()
    trail.wait(rid, "expired", timeout=20)
    names = trail.names(rid)
    assert names.count("expired") == 1 and names[-1] == "expired"


def test_vault_down_at_issue_time_fails_cleanly(vault_world):
    server, slack, bot, client, trail = vault_world
    server.stop()
    rid = request_and_approve(client, slack, REQUESTER, "payments-read 10m INC-8 vault down")
    trail.wait(rid, "issue_failed")
    told = slack.wait_for(lambda: next((m for m in slack.dm_messages(REQUESTER) if "could not be issued" in m["text"]), None))
    assert rid in told["text"] and "Nothing was issued" in told["text"]
    assert not any("unwrap" in m["text"] for m in slack.dm_messages(REQUESTER))
    slack.wait_for(lambda: any(rid in m["text"] for m in slack.messages_in(ALERTS)))
    server.start()


def test_slack_errors_and_rate_limits_lose_nothing(tmp_path, openbao, bot_vault_token):
    with local_bot(tmp_path, openbao.addr, bot_vault_token) as world:
        slack, client = world.slack, world.client
        trail = Trail(world.db_url)
        slack.fail_next("chat.postMessage", status=500)
        slack.rate_limit_next("conversations.open", retry_after=1)
        rid = request_and_approve(client, slack, REQUESTER, "payments-read 10m INC-9 flaky slack")
        assert [m for m, _ in slack.calls].count("chat.postMessage") >= 2  # the 500 was retried
        # Slack is down hard while the decision is made: the decision and the credential stand.
        slack.fail_all("chat.update", status=503)
        trail.wait(rid, "issued")
        slack.wait_for(lambda: any("unwrap" in m["text"] and rid in m["text"] for m in slack.dm_messages(REQUESTER)))
        slack.heal()
        client.slash(REQUESTER, f"revoke {rid}")
        trail.wait(rid, "revoked")
        message = slack.wait_for(lambda: slack.find_message(lambda m: rid in message_text(m) and "Revoked" in message_text(m)))
        assert "[Approve]" not in message_text(message)
        trail.engine.dispose()


def test_postgres_sessions_terminated_mid_run(tmp_path, openbao, bot_vault_token):
    with (
        fresh_database("postgresql", tmp_path) as db_url,
        local_bot(tmp_path, openbao.addr, bot_vault_token, db_url=db_url) as world,
    ):
        bot, slack, client = world.bot, world.slack, world.client
        trail = Trail(db_url)
        name = db_url.rsplit("/", 1)[1]

        def terminate() -> int:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchall()
            return len(rows)

        rid = request_and_approve(client, slack, REQUESTER, "db-admin-staging 4s pg chaos")
        trail.wait(rid, "issued")
        trail.engine.dispose()
        assert terminate() >= 1  # the pool's connections
        second = request_and_approve(client, slack, "U0DEV0002", "db-admin-staging 3s after the chaos", APPROVER_2)
        trail.wait(second, "issued")
        trail.engine.dispose()
        terminate()
        for r in (rid, second):
            trail.wait(r, "expired", timeout=20)
            assert trail.names(r).count("expired") == 1
        assert bot.runtime.health() == {"database": True, "vault": True, "scheduler": True}
        trail.engine.dispose()


def test_concurrent_clicks_across_replicas_issue_once(tmp_path, openbao, bot_vault_token):
    with fresh_database("postgresql", tmp_path) as db_url, SlackStandIn(BOT_TOKEN, users=USERS) as slack:
        catalog = make_catalog_dir(tmp_path) / "catalog.toml"
        replica = dict(db_url=db_url, catalog=catalog, slack=slack)
        with (
            local_bot(tmp_path, openbao.addr, bot_vault_token, **replica) as one,
            local_bot(tmp_path, openbao.addr, bot_vault_token, **replica) as two,
        ):
            clients = [one.client, two.client]
            _, body = clients[0].slash(REQUESTER, "payments-read 10m INC-10 two replicas")
            rid = body["text"].split("`")[1]
            slack.wait_for(lambda: slack.find_message(lambda m: rid in message_text(m) and "[Approve]" in message_text(m)))
            barrier = threading.Barrier(6)

            def click(i: int) -> None:
                barrier.wait()
                clients[i % 2].click([APPROVER, APPROVER_2, "U0APPR003"][i % 3], "approve", rid)

            threads = [threading.Thread(target=click, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            trail = Trail(db_url)
            trail.wait(rid, "issued")
            time.sleep(0.5)
            names = trail.names(rid)
            assert names.count("approved") == 1 and names.count("issued") == 1
            trail.engine.dispose()
