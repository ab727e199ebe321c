"""The outbox with real `jitbot serve` processes: kill -9 loses no message and no credential; replicas share it."""

from __future__ import annotations

import json
import time

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest
from sqlalchemy import create_engine, text

from devkit.processes import ServeProcess
from devkit.standin import SlackStandIn, message_text
from tests.conftest import APPROVER, REQUESTER, WRAP_TOKEN, SettlingClient, process_env

REQUESTERS = ["U0DEV0001", "U0DEV0002", "U0DEV0003", "U0OUTSIDE", "U0AUDIT01", "U0SEC0001"]


@pytest.fixture
def env(tmp_path, db_url, openbao, bot_vault_token):
    short = {"JITBOT_WRAP_TTL": 10, "JITBOT_OUTBOX_LEASE": 5}  # so the test need not wait minutes
    with process_env(tmp_path, openbao.addr, bot_vault_token, db_url=db_url, **short) as env:
        yield env


def rows(db_url: str, sql: str, **params: object) -> list[tuple]:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        found = [tuple(r) for r in connection.execute(text(sql), params)]
    engine.dispose()
    return found


def events(db_url: str, rid: str) -> list[tuple[str, dict]]:
    found = rows(db_url, "SELECT event, detail FROM audit_events WHERE request_id = :r ORDER BY seq", r=rid)
    return [(name, json.loads(detail)) for name, detail in found]


def wait_until(predicate, timeout: float = 30, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def approval_messages(slack: SlackStandIn, rid: str) -> list[dict]:
    return [m for ms in slack.messages.values() for m in ms if rid in message_text(m) and "[Approve]" in message_text(m)]


def unsettled(db_url: str) -> list[tuple]:
    return rows(
        db_url, "SELECT id, kind, attempts FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL AND kind <> 'credential'"
    )


def credential_dms(slack: SlackStandIn, rid: str) -> list[str]:
    return [m["text"] for m in slack.dm_messages(REQUESTER) if rid in m["text"] and WRAP_TOKEN.search(m["text"])]


def test_a_credential_lost_to_kill_9_is_replaced_and_the_old_one_is_dead(env, tmp_path, openbao, db_url, vault_root):
    slack, variables = env
    first = ServeProcess(variables, tmp_path / "serve-1.log").start()
    try:
        client = SettlingClient(first, slack)
        status, body = client.slash(REQUESTER, "payments-read 10m INC-10 the DM is lost")
        assert status == 200, body
        rid = body["text"].split("`")[1]
        wait_until(lambda: approval_messages(slack, rid), what="the approval message")
        slack.fail_all("chat.postMessage", 503)  # Slack is down from here: the credential DM cannot go out
        client.click(APPROVER, "approve", rid)
        wait_until(lambda: "issued" in [e for e, _ in events(db_url, rid)], what="the issue")
        first.kill()  # between the issue and any DM: the wrapping token dies with the process
    finally:
        first.kill()
    slack.heal()
    old = next(d["accessor"] for e, d in events(db_url, rid) if e == "issued")
    assert credential_dms(slack, rid) == []
    second = ServeProcess(variables, tmp_path / "serve-2.log").start()
    try:
        # After the wrap TTL the check comes due: a new credential for the rest of the time, delivered.
        dm = wait_until(lambda: credential_dms(slack, rid), timeout=40, what="the replacement credential")
        wait_until(lambda: not unsettled(db_url), what="every message delivered")
        time.sleep(1.5)  # a second (duplicate) credential DM would show up by now
        assert len(credential_dms(slack, rid)) == 1, credential_dms(slack, rid)
    finally:
        second.stop()
    wrapping = WRAP_TOKEN.search(dm[0]).group(1)
    token = hvac.Client(url=openbao.addr, token=wrapping).sys.unwrap()["auth"]["client_token"]
    assert hvac.Client(url=openbao.addr, token=token).auth.token.lookup_self()["data"]["policies"]
    with pytest.raises((Forbidden, InvalidRequest)):  # the credential nobody received was revoked
        vault_root.auth.token.lookup_accessor(old)
    names = [e for e, _ in events(db_url, rid)]
    assert names[:3] == ["requested", "approved", "issued"] and names.count("reissued") == 1
    reissued = next(d for e, d in events(db_url, rid) if e == "reissued")
    assert reissued["old_accessor"] == old and reissued["accessor"] != old
    # Every message the kill interrupted (the approval message's re-render and thread line) went out after all.
    assert rows(db_url, "SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL") == [(0,)]


def test_slack_failing_the_dm_then_kill_9_leaves_one_working_credential_within_30s_with_the_default_wrap_ttl(
    env, tmp_path, openbao, db_url, vault_root
):
    slack, variables = env
    variables = {k: v for k, v in variables.items() if k != "JITBOT_WRAP_TTL"}  # the default: five minutes
    first = ServeProcess(variables, tmp_path / "serve-1.log").start()
    try:
        client = SettlingClient(first, slack)
        status, body = client.slash(REQUESTER, "payments-read 10m INC-13 every DM fails")
        assert status == 200, body
        rid = body["text"].split("`")[1]
        wait_until(lambda: approval_messages(slack, rid), what="the approval message")
        slack.fail_all("chat.postMessage", 503)  # every DM fails while the credential is issued
        client.click(APPROVER, "approve", rid)
        wait_until(lambda: "issued" in [e for e, _ in events(db_url, rid)], what="the issue")
    finally:
        first.kill()
    slack.heal()
    old = next(d["accessor"] for e, d in events(db_url, rid) if e == "issued")
    check = json.loads(rows(db_url, "SELECT payload FROM outbox WHERE kind = 'credential'")[0][0])
    assert check["accessor"] == old and check["wrap"] and "token" not in json.dumps(check).lower()  # never the token
    second = ServeProcess(variables, tmp_path / "serve-2.log").start()
    restarted = time.monotonic()
    try:
        dm = wait_until(lambda: credential_dms(slack, rid), timeout=30, what="a working credential within 30 s")
        took = time.monotonic() - restarted
        time.sleep(1.5)  # a second (duplicate) credential DM would show up by now
        assert len(credential_dms(slack, rid)) == 1, credential_dms(slack, rid)
    finally:
        second.stop()
    assert took < 30, took
    token = hvac.Client(url=openbao.addr, token=WRAP_TOKEN.search(dm[0]).group(1)).sys.unwrap()["auth"]["client_token"]
    assert hvac.Client(url=openbao.addr, token=token).auth.token.lookup_self()["data"]["policies"]
    for dead in (old, check["wrap"]):  # the credential nobody received, and the wrapping token of the lost DM
        with pytest.raises((Forbidden, InvalidRequest)):
            vault_root.auth.token.lookup_accessor(dead)
    assert [e for e, _ in events(db_url, rid)].count("reissued") == 1


def test_kill_9_with_messages_queued_loses_none(env, tmp_path, db_url):
    slack, variables = env
    first = ServeProcess(variables, tmp_path / "serve-1.log").start()
    slack.fail_all("chat.postMessage", 503)
    try:
        client = SettlingClient(first, slack)
        rids = []
        for requester in REQUESTERS[:3]:
            status, body = client.slash(requester, "payments-read 10m INC-11 queued while Slack is down")
            assert status == 200, body
            rids.append(body["text"].split("`")[1])
        wait_until(lambda: len(rows(db_url, "SELECT id FROM outbox WHERE attempts > 0")) >= 1, what="a failed attempt")
    finally:
        first.kill()
    assert len(unsettled(db_url)) == 3  # committed with the requests, not lost with the process
    slack.heal()
    second = ServeProcess(variables, tmp_path / "serve-2.log").start()
    try:
        wait_until(lambda: not unsettled(db_url), timeout=40, what="the queued messages")
        for rid in rids:
            assert len(approval_messages(slack, rid)) == 1, rid
    finally:
        second.stop()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # replicas share PostgreSQL; SQLite is one process
def test_two_replicas_deliver_one_outbox_without_duplicates(env, tmp_path, db_url):
    slack, variables = env
    replicas = [ServeProcess(variables, tmp_path / f"serve-{i}.log").start() for i in range(2)]
    try:
        rids = []
        for i, requester in enumerate(REQUESTERS):
            client = SettlingClient(replicas[i % 2], slack)
            status, body = client.slash(requester, "payments-read 10m INC-12 two replicas")
            assert status == 200, body
            rids.append(body["text"].split("`")[1])
        wait_until(lambda: not unsettled(db_url), what="every approval message")
        time.sleep(1.5)  # a duplicate from the other replica would show up by now
        claimed_by = {r[0].rsplit("-", 1)[0] for r in rows(db_url, "SELECT claimed_by FROM outbox WHERE claimed_by IS NOT NULL")}
        for rid in rids:
            assert len(approval_messages(slack, rid)) == 1, rid
        assert len(rows(db_url, "SELECT id FROM outbox WHERE delivered_at IS NOT NULL")) == len(rids)
        assert claimed_by, "the rows say which worker delivered them"
    finally:
        for replica in replicas:
            replica.stop()
