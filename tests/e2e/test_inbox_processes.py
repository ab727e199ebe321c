"""The inbox with real `jitbot serve` processes: an acked click or revoke survives kill -9 and takes effect once."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hvac.exceptions import Forbidden, InvalidRequest

from devkit.processes import ServeProcess
from devkit.standin import SlackStandIn, message_text
from grants.inbox import MAX_ATTEMPTS
from tests.conftest import APPROVER, BOT_TOKEN, REQUESTER, USERS, SettlingClient, make_catalog_dir, serve_env
from tests.e2e.test_outbox_processes import approval_messages, events, rows, wait_until
from tests.tcp_proxy import FreezableProxy

ALERTS = "C0ALERTS1"
# Twenty people who may ask for payments-read (or its twin) and are not the approver who clicks.
ASKERS = [user for user in USERS if user != APPROVER]
TWIN = """
[scopes.payments-read-twin]
description = "Read production payment secrets (a twin, so twenty requests need no more people)"
credential = "vault_token"
policies = ["payments-read"]
min_duration = "1m"
default_duration = "15m"
max_duration = "1h"
requesters = ["*"]
approvers = ["group:db-oncall", "U0APPR003"]
approvals_required = 1
require_reason = true
"""


@pytest.fixture
def env(tmp_path, db_url, openbao, bot_vault_token, vault_root):
    policies = make_catalog_dir(tmp_path)
    catalog = policies / "catalog.toml"
    catalog.write_text(catalog.read_text() + TWIN)
    role = vault_root.read("auth/token/roles/jitbot-payments-read")["data"]  # the twin's token role, as sync writes it
    vault_root.write("auth/token/roles/jitbot-payments-read-twin", **{k: v for k, v in role.items() if k != "name"})
    vault = urlparse(openbao.addr)
    # Vault behind a proxy the test can freeze: the clicks' work then stops inside Vault, after their acks.
    with SlackStandIn(BOT_TOKEN, users=USERS) as slack, FreezableProxy((vault.hostname or "", vault.port or 0)) as proxy:
        yield (
            slack,
            proxy,
            # Leases lapse 3 s after a process dies.
            serve_env(slack, f"http://127.0.0.1:{proxy.port}", bot_vault_token, db_url, catalog, JITBOT_OUTBOX_LEASE=3),
        )


def undone(db_url: str) -> int:
    return rows(db_url, "SELECT count(*) FROM inbox WHERE kind IS NOT NULL AND done_at IS NULL")[0][0]


def test_twenty_acked_approve_clicks_survive_kill_9_and_each_takes_effect_once(env, tmp_path, db_url, openbao):
    slack, proxy, variables = env
    first = ServeProcess(variables, tmp_path / "serve-1.log").start()
    try:
        client = SettlingClient(first, slack)
        rids = []
        for i in range(20):
            scope = "payments-read" if i < len(ASKERS) else "payments-read-twin"
            status, body = client.slash(ASKERS[i % len(ASKERS)], f"{scope} 10m INC-{i} burst of approvals")
            assert status == 200 and "Request `JIT-" in body["text"], body
            rids.append(body["text"].split("`")[1])
        wait_until(lambda: all(approval_messages(slack, rid) for rid in rids), what="every approval message")
        proxy.freeze()  # from here every Vault call hangs: the clicks are acked, their work cannot finish

        def click(rid: str) -> tuple[int, float]:
            started = time.monotonic()
            status, _ = SettlingClient(first, slack).click(APPROVER, "approve", rid)
            return status, time.monotonic() - started

        with ThreadPoolExecutor(20) as pool:
            acks = list(pool.map(click, rids))
        assert all(status == 200 for status, _ in acks), acks
        first.kill()  # at once after the last ack
    finally:
        first.kill()
    left = undone(db_url)
    assert left > 0, "the kill came after every click had finished: the test proved nothing"
    pending = rows(db_url, "SELECT count(*) FROM requests WHERE state = 'pending'")[0][0]
    proxy.thaw()
    second = ServeProcess(variables, tmp_path / "serve-2.log").start()
    started = time.monotonic()
    try:
        wait_until(lambda: all("issued" in [e for e, _ in events(db_url, rid)] for rid in rids), timeout=60, what="every grant")
        took = time.monotonic() - started
        for rid in rids:  # the approver sees every click in the approval message, updated in place
            wait_until(lambda rid=rid: any("approved by <@U0APPR001>" in message_text(m) for m in approval_messages_any(slack, rid)),
                       what=f"the approval message of {rid} updated")  # fmt: skip
        time.sleep(1)  # a second run of any click would show by now
    finally:
        second.stop()
    for rid in rids:
        names = [e for e, _ in events(db_url, rid)]
        assert names.count("approved") == 1 and names.count("issued") == 1, (rid, names)
    assert undone(db_url) == 0
    print(
        f"\n{left} acked clicks unfinished at the kill ({pending} requests still pending); all 20 issued {took:.1f} s after the restart"
    )


@pytest.mark.parametrize("text", ["payments-read 10m INC-77 asked as the bot died", "staging-read 30m"])
def test_a_new_request_acked_before_kill_9_is_made_once_after_the_restart(env, tmp_path, db_url, text):
    """The process dies right after the ack, before the request is written (tests/crash_serve.py): the inbox row holds
    it, with the ID the ack named; after the restart it is made once and its approvers are asked (or, auto-approved,
    its credential is issued once and delivered)."""
    slack, _, variables = env
    crash = {"JITBOT_TEST_DIE_AT": "requested", "JITBOT_TEST_DIE_AFTER": "0.5", "JITBOT_TEST_RECORD": str(tmp_path / "made")}
    first = ServeProcess({**variables, **crash}, tmp_path / "serve-1.log", module="tests.crash_serve").start()
    try:
        # Not settled: the process dies before the request is made, which is the point.
        status, body = SettlingClient(first, slack).slash(REQUESTER, text, settle=False)
        assert status == 200 and "Request `JIT-" in body["text"], body
        rid = body["text"].split("`")[1]
        assert first.died() == -9, "the process was to die writing the request"
    finally:
        first.kill()
    assert rows(db_url, "SELECT count(*) FROM requests")[0][0] == 0 and undone(db_url) == 1  # only the inbox row holds it
    second = ServeProcess(variables, tmp_path / "serve-2.log").start()
    try:
        if text.startswith("payments-read"):
            asked = wait_until(lambda: approval_messages(slack, rid), what="the approvers asked after the restart")
        else:
            asked = wait_until(lambda: [m for m in slack.dm_messages(REQUESTER) if rid in m["text"] and "unwrap" in m["text"]],
                               what="the credential delivered after the restart")  # fmt: skip
        wait_until(lambda: undone(db_url) == 0, what="the inbox row done")
        time.sleep(1)  # a second run would show by now
    finally:
        second.stop()
    assert len(asked) == 1 and rows(db_url, f"SELECT count(*) FROM requests WHERE id = '{rid}'") == [(1,)]
    names = [e for e, _ in events(db_url, rid)]
    assert names.count("requested") == 1 and names.count("issued") == (0 if text.startswith("payments") else 1), names
    assert rows(db_url, "SELECT count(*) FROM requests")[0][0] == 1


def approval_messages_any(slack: SlackStandIn, rid: str) -> list[dict]:
    """The approval messages about `rid`, decided or not (a decided one has no buttons left)."""
    return [m for ms in slack.messages.values() for m in ms if rid in message_text(m) and "payments-read" in message_text(m)]


def test_an_acked_revoke_survives_kill_9_and_the_holder_is_told(env, tmp_path, db_url, openbao, vault_root):
    slack, proxy, variables = env
    first = ServeProcess(variables, tmp_path / "serve-1.log").start()
    try:
        client = SettlingClient(first, slack)
        status, body = client.slash(REQUESTER, "staging-read 30m")  # auto-approved for developers
        assert status == 200, body
        rid = body["text"].split("`")[1]
        wait_until(lambda: "issued" in [e for e, _ in events(db_url, rid)], what="the grant")
        accessor = next(d["accessor"] for e, d in events(db_url, rid) if e == "issued")
        proxy.freeze()  # the revoke is acked and then stuck in Vault when the process dies
        status, _ = client.slash(REQUESTER, f"revoke {rid}")
        assert status == 200
        wait_until(lambda: undone(db_url) == 1, what="the revoke recorded")
        first.kill()
    finally:
        first.kill()
    assert "revoked" not in [e for e, _ in events(db_url, rid)]
    proxy.thaw()
    second = ServeProcess(variables, tmp_path / "serve-2.log").start()
    started = time.monotonic()
    try:
        wait_until(lambda: "revoked" in [e for e, _ in events(db_url, rid)], timeout=30, what="the revoke after the restart")
        took = time.monotonic() - started
        told = wait_until(lambda: [m for m in slack.dm_messages(REQUESTER) if rid in m["text"] and "was revoked by" in m["text"]],
                          what="the holder told")  # fmt: skip
    finally:
        second.stop()
    assert took < 10, f"revoked {took:.1f} s after the restart"
    assert len(told) == 1
    assert [e for e, _ in events(db_url, rid)].count("revoked") == 1
    with pytest.raises((Forbidden, InvalidRequest)):  # the token is gone in Vault
        vault_root.auth.token.lookup_accessor(accessor)
    detail = rows(db_url, "SELECT payload FROM inbox WHERE kind = 'verb'")
    assert detail == [(None,)], "the work's arguments (a response URL) are dropped once it ran"
    json.dumps(detail)


def test_slack_rate_limiting_every_post_holds_no_ack_revoke_or_expiry(env, tmp_path, db_url):
    """Slack answers 429 with Retry-After: 20 to everything: acks stay fast, the security actions happen and are
    recorded at once (no thread sleeps through a Retry-After), and the messages go out once Slack lets them."""
    slack, _, variables = env
    bot = ServeProcess(variables, tmp_path / "serve.log").start()
    try:
        client = SettlingClient(bot, slack)
        rid = client.slash(REQUESTER, "staging-read 30m")[1]["text"].split("`")[1]
        short = client.slash("U0DEV0002", "staging-read 8s")[1]["text"].split("`")[1]
        # Pending requests approved during the storm: each credential DM meets a 429 in the thread that issued it.
        pending = [
            client.slash(user, "payments-read 10m INC-5 approved in a storm")[1]["text"].split("`")[1] for user in ASKERS[3:9]
        ]
        for grant in (rid, short):
            wait_until(lambda grant=grant: "issued" in [e for e, _ in events(db_url, grant)], what="the grants")
        wait_until(lambda: not rows(db_url, "SELECT id FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL AND kind <> 'credential'"),
                   what="every message before the storm")  # fmt: skip
        slack.rate_limit_next(None, retry_after=20, count=1_000_000)  # every Web API call and response URL
        acks = []
        for pending_rid in pending:
            started = time.monotonic()
            status, _ = client.click(APPROVER, "approve", pending_rid)
            acks.append(time.monotonic() - started)
            assert status == 200
        for user in ASKERS[:10]:
            started = time.monotonic()
            status, _ = client.slash(user, "list", settle=False)  # timed: the ack alone
            acks.append(time.monotonic() - started)
            assert status == 200
        asked = []
        for user in ASKERS[:3]:  # new requests: made from the inbox, their approvers' messages wait for Slack
            started = time.monotonic()
            status, body = client.slash(
                user, "payments-read-twin 10m INC-6 asked in a storm", settle=False
            )  # timed: the ack alone
            acks.append(time.monotonic() - started)
            assert status == 200 and "Request `JIT-" in body["text"], body
            asked.append(body["text"].split("`")[1])
        started = time.monotonic()
        status, _ = client.slash(REQUESTER, f"revoke {rid}", settle=False)  # timed: the ack alone
        acks.append(time.monotonic() - started)
        assert status == 200
        wait_until(lambda: "revoked" in [e for e, _ in events(db_url, rid)], timeout=2, what="the revoke within 2 s")
        for new in asked:
            wait_until(lambda new=new: "requested" in [e for e, _ in events(db_url, new)], timeout=2, what="the request made")
        expired = wait_until(lambda: [d for e, d in events(db_url, short) if e == "expired"], timeout=15, what="the expiry")
        assert expired[0]["lag_seconds"] < 2, expired
        assert max(acks) < 1, acks
        slack.heal()
        # The holder's message waited for Slack's Retry-After (20 s) and then went out.
        wait_until(lambda: [m for m in slack.dm_messages(REQUESTER) if rid in m["text"] and "was revoked by" in m["text"]],
                   timeout=60, what="the revoke's message after the rate limit")  # fmt: skip
        wait_until(lambda: all(approval_messages(slack, new) for new in asked), timeout=60, what="the approvers asked after it")
    finally:
        bot.stop()
    print(f"\nacks under 429: max {max(acks) * 1000:.0f} ms; expiry lag {expired[0]['lag_seconds']} s")


def test_a_request_whose_work_kills_every_worker_is_given_up_after_the_cap(env, tmp_path, db_url):
    """A poison row: the new request's `requested` write SIGKILLs every process that runs it (tests/crash_serve.py).
    Each claim counts an attempt; after five deaths the sixth claim settles it unrun, audits it and alerts, and that
    process lives (it is still the crashing bot, so it would have died had it run the work)."""
    slack, _, variables = env
    catalog = Path(variables["JITBOT_CATALOG"])
    catalog.write_text(catalog.read_text().replace('alert_channel = ""', f'alert_channel = "{ALERTS}"', 1))
    crash = {"JITBOT_TEST_DIE_AT": "requested", "JITBOT_TEST_RECORD": str(tmp_path / "made")}

    def crashing(n: int) -> ServeProcess:
        return ServeProcess({**variables, **crash}, tmp_path / f"serve-{n}.log", module="tests.crash_serve")

    first = crashing(1).start()
    try:
        status, body = SettlingClient(first, slack).slash(REQUESTER, "payments-read 10m INC-99 poison row", settle=False)
        assert status == 200 and "Request `JIT-" in body["text"], body
        assert first.died() == -9
    finally:
        first.kill()
    for n in range(2, MAX_ATTEMPTS + 1):  # each takes the row once its lease lapsed, and dies running it
        process = crashing(n)
        try:
            process.start()
        except AssertionError:
            pass  # it claimed the row and died before /healthz answered: the same death
        try:
            assert process.died() == -9
        finally:
            process.kill()
    assert rows(db_url, "SELECT attempts FROM inbox WHERE kind = 'request' AND done_at IS NULL") == [(MAX_ATTEMPTS,)]
    last = crashing(MAX_ATTEMPTS + 1).start()
    try:
        wait_until(lambda: undone(db_url) == 0, what="the poison row given up")
        alert = wait_until(lambda: [m for m in slack.messages_in(ALERTS) if "gave up" in m["text"]], what="the alert")
        assert last.process is not None and last.process.poll() is None  # it never ran the work
    finally:
        last.stop()
    assert f"was claimed {MAX_ATTEMPTS + 1} times" in alert[0]["text"]
    assert rows(db_url, "SELECT count(*) FROM requests") == [(0,)]
    refused = [(a, json.loads(d)) for a, d in rows(db_url, "SELECT actor, detail FROM audit_events WHERE event = 'rejected'")]
    assert [(a, d["rule"], d["task"], d["attempts"]) for a, d in refused] == [
        ("system", "inbox_attempts", "request", MAX_ATTEMPTS + 1)
    ]
