"""A leader whose TCP path is cut (not killed) loses the lead within seconds and the other replica expires what falls due."""

from __future__ import annotations

import time
from collections.abc import Callable

import hvac
import pytest
from hvac.exceptions import Forbidden

from devkit.harness import LocalBot
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn, message_text
from grants.adapters.leader_lock import PostgresLeaderLock
from grants.adapters.sql_store import make_engine
from tests.conftest import APPROVER, BOT_TOKEN, REQUESTER, SIGNING_SECRET, USERS, WRAP_TOKEN, make_catalog_dir
from tests.databases import fresh_database
from tests.tcp_proxy import FreezableProxy

TAKEOVER_WITHIN = 10.0  # seconds, from the freeze


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` until true; return the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def through(proxy: FreezableProxy, url: str) -> str:
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")


def test_a_frozen_lock_holder_loses_the_lock_and_another_takes_it(tmp_path):
    with fresh_database("postgresql", tmp_path) as url, FreezableProxy(("127.0.0.1", 5432)) as proxy:
        engine_a, engine_b = make_engine(through(proxy, url)), make_engine(url)
        a, b = PostgresLeaderLock(engine_a), PostgresLeaderLock(engine_b)
        lost: list[float] = []
        a.on_lost = lambda: lost.append(time.monotonic())
        try:
            assert a.acquire() and a.holding() and not b.acquire()
            time.sleep(a.lease)  # an idle-looking holder keeps the lock: its heartbeat keeps the session busy
            assert a.holding() and not b.acquire()
            proxy.freeze()
            frozen_at = time.monotonic()
            wait_until(lambda: not a.holding(), a.lease, "the frozen holder gives up")
            wait_until(lambda: bool(lost), a.lease, "the heartbeat thread tells the timers")
            assert lost[0] - frozen_at < a.lease
            wait_until(b.acquire, TAKEOVER_WITHIN - (time.monotonic() - frozen_at), "the other replica takes the lock")
            acquired_at = time.monotonic()
            assert b.holding()
            # The old holder stopped before the new one started: never two leaders.
            assert lost[0] < acquired_at
            proxy.thaw()
            a.release()
            assert not a.acquire() and b.holding()  # back on the network, the old holder is a follower
        finally:
            a.release()
            b.release()
            engine_a.dispose()
            engine_b.dispose()


@pytest.mark.usefixtures("vault_synced")
def test_a_frozen_leader_replica_is_replaced_and_due_grants_expire(tmp_path, openbao, bot_vault_token):
    policies = make_catalog_dir(tmp_path)
    with (
        fresh_database("postgresql", tmp_path) as url,
        FreezableProxy(("127.0.0.1", 5432)) as proxy,
        SlackStandIn(BOT_TOKEN, users=USERS) as slack,
    ):
        settings = dict(
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.url,
            vault_addr=openbao.addr, vault_token=bot_vault_token, jitbot_catalog=policies / "catalog.toml",
        )  # fmt: skip
        replica_a = LocalBot(database_url=through(proxy, url), **settings).start()  # all its database traffic is proxied
        replica_b = LocalBot(database_url=url, **settings).start()
        try:
            assert replica_a.runtime and replica_b.runtime
            assert replica_a.runtime.role() == "leader" and replica_b.runtime.role() == "follower"
            client = SignedSlackClient(replica_b.url, SIGNING_SECRET, standin=slack, timeout=30)
            status, body = client.slash(REQUESTER, "db-admin-staging 12s staging migration")
            assert status == 200 and "Request `JIT-" in body["text"], body
            rid = body["text"].split("Request `", 1)[1].split("`", 1)[0]
            client.click(APPROVER, "approve", rid)
            message = slack.wait_for(
                lambda: next(
                    (m for m in slack.dm_messages(REQUESTER) if rid in message_text(m) and "unwrap" in message_text(m)), None
                ),
                timeout=10,
            )
            match = WRAP_TOKEN.search(message_text(message))
            assert match
            token = str(hvac.Client(url=openbao.addr, token=match.group(1)).sys.unwrap()["auth"]["client_token"])

            proxy.freeze()  # the leader's host vanishes from the network; its process and sockets live on
            wait_until(lambda: replica_b.runtime.role() == "leader", TAKEOVER_WITHIN, "the follower takes over")
            assert not replica_a.runtime.timer.active  # the old leader stopped its timers on its own
            with replica_b.runtime.store.engine.connect() as connection:
                from sqlalchemy import text

                def expired() -> bool:
                    rows = connection.execute(
                        text("SELECT count(*) FROM audit_events WHERE request_id = :r AND event = 'expired'"), {"r": rid}
                    ).scalar()
                    connection.commit()
                    return bool(rows)

                wait_until(expired, 20, "the new leader expires the grant that came due")
            with pytest.raises(Forbidden):
                hvac.Client(url=openbao.addr, token=token).auth.token.lookup_self()
            proxy.thaw()
            time.sleep(2)  # the old leader is back on the network for a couple of ticks: it must stay a follower
            assert replica_a.runtime.role() == "follower" and replica_b.runtime.role() == "leader"
        finally:
            proxy.thaw()
            replica_b.stop()
            replica_a.stop()
