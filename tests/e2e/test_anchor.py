"""The audit chain is anchored outside the database: an insider who can write the database but not Vault can
neither truncate the trail nor rewrite (and re-hash) it without `jitbot audit verify` failing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from devkit.standin import message_text
from grants.adapters.sql_store import SqlStore, make_engine
from grants.adapters.vault_anchor import VaultAnchor
from grants.audit import AuditQuery, chained, detail_text
from grants.domain import AuditEvent
from tests.conftest import APPROVER, ROOT, World, local_bot
from tests.e2e.test_e2e import ask
from tests.integration.test_cli import jitbot

ALERTS = "C0ALERTS1"


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    return {'alert_channel = ""': f'alert_channel = "{ALERTS}"'}


def settle(world: World) -> int:
    """Make some history, then wait until a worker anchored the chain head; the anchored seq."""
    rid = ask(world, "payments-read 10m INC-5 anchor me")
    world.client.click(APPROVER, "approve", rid)
    # The grant is only a trail to anchor: a generous wait, as the full suite on a loaded 2-core machine once took
    # over 15 s to run the deferred click here.
    world.wait_audit(rid, "issued", timeout=60)
    assert world.bot.runtime is not None
    store = world.bot.runtime.store
    anchor = VaultAnchor(world.vault, "secret/jitbot/audit-anchor")
    deadline = time.monotonic() + 15
    while True:
        seq, hash_ = store.chain_head()
        found = anchor.latest()
        if found is not None and (found.seq, found.hash) == (seq, hash_):
            return seq
        assert time.monotonic() < deadline, f"no anchor for seq {seq}: {found}"
        time.sleep(0.1)


def verify(world: World) -> tuple[int, str]:
    result = jitbot("audit", "verify", DATABASE_URL=world.db_url, VAULT_ADDR=world.vault_addr, VAULT_TOKEN=world.vault.token)
    return result.returncode, result.stdout + result.stderr


def test_an_intact_trail_verifies_against_its_anchor(world: World):
    seq = settle(world)
    code, out = verify(world)
    assert code == 0 and f"anchor: seq {seq} written to Vault" in out, out


def test_deleting_the_newest_events_and_rewriting_the_head_fails_verify(world: World):
    seq = settle(world)
    world.bot.stop()  # the insider works on a quiet database
    with make_engine(world.db_url).begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > :keep"), {"keep": seq - 2})
        last = connection.execute(text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).one()
        connection.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": last[0], "h": last[1]})
    code, out = verify(world)
    assert code == 1 and "truncated" in out and f"says {seq} events" in out, out


def test_rewriting_and_rehashing_the_whole_trail_fails_verify(world: World):
    settle(world)
    world.bot.stop()
    store = SqlStore(make_engine(world.db_url))
    events = list(store.events(AuditQuery()))
    prev = "0" * 64
    with store.engine.begin() as connection:
        for event in events:
            detail = dict(event.detail)
            if "reason" in detail:
                detail["reason"] = "routine maintenance"  # the insider launders the story
            forged = chained(AuditEvent(event.event, event.at, event.actor, event.request_id, event.scope, event.subject,
                                        detail), event.seq or 0, prev)  # fmt: skip
            connection.execute(text("UPDATE audit_events SET detail = :d, prev_hash = :p, hash = :h WHERE seq = :s"),
                               {"d": detail_text(forged.detail), "p": forged.prev_hash, "h": forged.hash, "s": forged.seq})  # fmt: skip
            prev = forged.hash or prev
        connection.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})
    assert "routine maintenance" in json.dumps([e.detail for e in store.events(AuditQuery())])
    code, out = verify(world)
    assert code == 1 and "rewritten" in out, out


def restart_and_append(world: World, anchored: int) -> None:
    """The insider waits: the bot restarts (a deploy, another worker taking over), people go on asking, and the trail's seq
    passes the anchored one. No worker may refuse to anchor the tampered chain, alert and audit it."""
    world.bot.start()
    rid = ask(world, "payments-read 10m INC-6 after the tamper", user="U0DEV0002")
    world.client.click(APPROVER, "approve", rid)
    world.wait_audit(rid, "issued")
    deadline = time.monotonic() + 15
    while not world.rows("SELECT seq FROM audit_events WHERE event = 'anchor_refused'"):
        assert time.monotonic() < deadline, "no worker refused to anchor the tampered trail"
        time.sleep(0.1)
    assert world.rows("SELECT max(seq) FROM audit_events")[0][0] > anchored
    time.sleep(1.5)  # a few more housekeeping ticks: none of them may anchor the forgery
    found = VaultAnchor(world.vault, "secret/jitbot/audit-anchor").latest()
    assert found is not None and found.seq == anchored, found
    assert len(world.rows("SELECT seq FROM audit_events WHERE event = 'anchor_refused'")) == 1  # once, not every tick
    world.slack.wait_for(
        lambda: any("no longer continues the anchor" in message_text(m) for m in world.slack.messages_in(ALERTS))
    )


def test_a_truncated_trail_stays_broken_after_a_restart_and_new_events(world: World):
    seq = settle(world)
    world.bot.stop()
    with make_engine(world.db_url).begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > :keep"), {"keep": seq - 2})
        last = connection.execute(text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).one()
        connection.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": last[0], "h": last[1]})
    restart_and_append(world, seq)
    code, out = verify(world)
    assert code == 1 and "outside the database" in out, out


def test_a_rehashed_trail_stays_broken_after_a_restart_and_new_events(world: World):
    seq = settle(world)
    world.bot.stop()
    store = SqlStore(make_engine(world.db_url))
    prev = "0" * 64
    with store.engine.begin() as connection:
        for event in list(store.events(AuditQuery())):
            forged = chained(AuditEvent(event.event, event.at, "U0NOBODY", event.request_id, event.scope, event.subject,
                                        event.detail), event.seq or 0, prev)  # fmt: skip
            connection.execute(text("UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
                               {"a": forged.actor, "p": forged.prev_hash, "h": forged.hash, "s": forged.seq})  # fmt: skip
            prev = forged.hash or prev
        connection.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})
    restart_and_append(world, seq)
    code, out = verify(world)
    assert code == 1 and "rewritten" in out, out


def test_without_vault_verify_says_what_it_could_not_check(world: World):
    settle(world)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "audit", "verify"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env={**env, "DATABASE_URL": world.db_url})  # fmt: skip
    assert result.returncode == 0 and "anchor: not checked (VAULT_ADDR is not set)" in result.stdout, (
        result.stdout + result.stderr
    )


@pytest.fixture
def unanchored(tmp_path, db_url, openbao, bot_vault_token, vault_root, catalog_edits) -> Iterator[World]:
    """The real bot whose JITBOT_AUDIT_ANCHOR names a path its policy does not cover (a wrong path, a policy not
    moved with it): every anchor write (and read: so `/healthz` says down at once) is refused by Vault."""
    anchor = "secret/jitbot/not-this-one"
    with local_bot(tmp_path, openbao.addr, bot_vault_token, vault=vault_root, db_url=db_url, catalog_edits=catalog_edits,
                   jitbot_audit_anchor=anchor) as world:  # fmt: skip
        yield world


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_an_unwritable_anchor_is_down_after_a_minute_alerted_and_verify_fails_even_after_a_wipe(unanchored: World):
    world = unanchored
    rid = ask(world, "payments-read 10m INC-5 anchor me")
    world.client.click(APPROVER, "approve", rid)
    # The grant is only a trail to anchor: a generous wait, as the full suite on a loaded 2-core machine once took
    # over 15 s to run the deferred click here.
    world.wait_audit(rid, "issued", timeout=60)
    deadline = time.monotonic() + 120
    while json.loads(get(f"{world.bot.url}/healthz")[1]).get("anchor") != "down":
        assert time.monotonic() < deadline, "the anchor was never reported down"
        time.sleep(1)
    status, body = get(f"{world.bot.url}/healthz")
    assert status == 503 and json.loads(body)["anchor"] == "down", body
    assert json.loads(get(f"{world.bot.url}/readyz")[1])["anchor"] == "down"
    assert get(f"{world.bot.url}/livez")[0] == 200  # not a reason to restart the process
    assert "jitbot_audit_anchor_up 0.0" in get(f"{world.bot.url}/metrics")[1]
    world.slack.wait_for(  # a minute after the process started without anchoring (real time)
        lambda: any("has not been written since" in message_text(m) for m in world.slack.messages_in(ALERTS)), timeout=120
    )
    time.sleep(2)  # more ticks, each failing to anchor: still one alert
    assert sum("has not been written since" in message_text(m) for m in world.slack.messages_in(ALERTS)) == 1
    code, out = verify(world)
    assert code == 1 and "no anchor in Vault vouches for the events from seq 1" in out, out
    world.bot.stop()
    with make_engine(world.db_url).begin() as connection:  # the insider deletes every event and the head
        connection.execute(text("DELETE FROM audit_events"))
        connection.execute(text("DELETE FROM audit_head"))
    code, out = verify(world)
    assert code == 1 and "holds no events" in out, out
