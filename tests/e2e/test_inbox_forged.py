"""A database insider's inbox rows: work the gate did not record (no MAC, or another row's) is never run, is audited
and alerted; a row claimed past its attempts is given up. The real Bolt app behind the real HTTP server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from grants.adapters.inbox_store import MAC_PURPOSE, SqlInbox
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine
from grants.inbox import MAX_ATTEMPTS, Work
from grants.seals import Sealer
from tests.conftest import APPROVER, World
from tests.e2e.test_e2e import approval_message, ask

ALERTS = "C0ALERTS1"


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    return {'alert_channel = ""': f'alert_channel = "{ALERTS}"'}


def _click_body(world: World, user: str, rid: str) -> dict[str, Any]:
    """What the insider writes: the body of an Approve click by `user`, as the gate would have recorded it."""
    message = approval_message(world, rid)
    channel, ts, team = message["channel"], message["ts"], world.client.team_id
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": world.client.api_app_id,
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "team": {"id": team, "domain": "jitbot-dev"},
        "channel": {"id": channel, "name": str(channel).lower()},
        "response_url": f"{world.slack.url}/response/forged",
        "actions": [{"action_id": "approve", "block_id": "actions", "value": f"{rid}:r", "type": "button", "action_ts": "1.0"}],
    }


def _insert(world: World, key: str, body: dict[str, Any], mac: str | None, **columns: Any) -> int:
    payload = json.dumps({"body": body}, separators=(",", ":"))
    now = datetime.now(UTC)
    row = {"key": key, "kind": "click", "payload": payload, "mac": mac, "received_at": now, "expires_at": now + timedelta(minutes=6),
           "attempts": 0, "next_attempt_at": now, "claimed_by": None, "claimed_until": None} | columns  # fmt: skip
    assert world.bot.runtime is not None
    with world.bot.runtime.store.engine.begin() as connection:
        names = ", ".join(row)
        connection.execute(text(f"INSERT INTO inbox ({names}) VALUES ({', '.join(':' + n for n in row)})"), row)
        return int(connection.execute(text("SELECT id FROM inbox WHERE key = :k"), {"k": key}).scalar_one())


def _sealer(world: World) -> Sealer:
    """The bot's own key (read from Vault at start-up), only to show a control row the insider could not make."""
    assert world.bot.runtime is not None and world.bot.runtime.service.deps.sealer is not None
    return world.bot.runtime.service.deps.sealer


def _done(world: World, entry: int) -> bool:
    return bool(world.rows(f"SELECT done_at FROM inbox WHERE id = {entry} AND done_at IS NOT NULL"))


def _rejected(world: World, rule: str) -> list[dict[str, Any]]:
    rows = world.rows("SELECT actor, detail FROM audit_events WHERE event = 'rejected' ORDER BY seq")
    return [json.loads(d) | {"actor": a} for a, d in rows if json.loads(d).get("rule") == rule]


def test_an_inserted_click_without_the_gates_mac_is_never_run_audited_and_alerted(world: World):
    rid = ask(world, "payments-read 30m INC-81 forged approval")
    body = _click_body(world, APPROVER, rid)
    payload = json.dumps({"body": body}, separators=(",", ":"))
    no_mac = _insert(world, "forged-no-mac", body, None)
    # A real MAC, but of another row (copied from one the gate recorded): it does not cover this key.
    copied = _insert(world, "forged-copied", body, _sealer(world).mac(MAC_PURPOSE, "a-genuine-row", "click", payload))
    world.slack.wait_for(lambda: (_done(world, no_mac) and _done(world, copied)) or None, timeout=15)
    assert world.rows(f"SELECT state FROM requests WHERE id = '{rid}'") == [("pending",)]
    events = [e for (e,) in world.rows(f"SELECT event FROM audit_events WHERE request_id = '{rid}' ORDER BY seq")]
    assert "approved" not in events and "issued" not in events and "approval_added" not in events, events
    # The first of the burst is audited in full (the copy is counted with it, like every refusal burst).
    [refusal] = _rejected(world, "inbox_forged")
    assert refusal == {
        "action": "inbox",
        "rule": "inbox_forged",
        "entry": no_mac,
        "task": "click",
        "attempts": 1,
        "actor": "system",
    }
    alert = world.slack.wait_for(lambda: next((m for m in world.slack.messages_in(ALERTS) if "no valid MAC" in m["text"]), None))
    assert f"Inbox row {no_mac} (`click`)" in alert["text"]
    assert world.rows(f"SELECT payload, mac FROM inbox WHERE id IN ({no_mac}, {copied})") == [(None, None), (None, None)]

    # Control: the very same body with the MAC only the key holder can make does approve (so only the MAC stopped it).
    genuine = _insert(world, "control", body, _sealer(world).mac(MAC_PURPOSE, "control", "click", payload))
    world.wait_audit(rid, "issued")
    world.slack.wait_for(lambda: _done(world, genuine) or None)
    approvals = world.rows(f"SELECT actor FROM audit_events WHERE request_id = '{rid}' AND event = 'approved'")
    assert approvals == [(APPROVER,)]


def test_a_signed_click_still_approves(world: World):
    rid = ask(world, "payments-read 30m INC-82 genuine approval")
    status, _ = world.client.click(APPROVER, "approve", rid)
    assert status == 200
    world.wait_audit(rid, "issued")
    world.slack.wait_for(lambda: world.rows("SELECT id FROM inbox WHERE kind = 'click' AND done_at IS NOT NULL") or None)
    assert world.rows("SELECT payload, mac FROM inbox WHERE kind = 'click'") == [(None, None)]  # dropped once run
    assert _rejected(world, "inbox_forged") == []


def test_a_row_claimed_past_its_attempts_is_given_up_audited_and_alerted(world: World):
    """A genuine row (the gate's MAC) whose work killed its worker every time: five claims lapsed, the sixth gives up."""
    rid = ask(world, "payments-read 30m INC-83 poison row")
    body = _click_body(world, APPROVER, rid)
    payload = json.dumps({"body": body}, separators=(",", ":"))
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    mac = _sealer(world).mac(MAC_PURPOSE, "poison", "click", payload)
    entry = _insert(world, "poison", body, mac, attempts=MAX_ATTEMPTS, claimed_by="dead-worker", claimed_until=lapsed)
    world.slack.wait_for(lambda: _done(world, entry) or None, timeout=15)
    assert world.rows(f"SELECT state FROM requests WHERE id = '{rid}'") == [("pending",)]  # not run a sixth time
    [gave_up] = _rejected(world, "inbox_attempts")
    assert gave_up == {"action": "inbox", "rule": "inbox_attempts", "entry": entry, "task": "click",
                       "attempts": MAX_ATTEMPTS + 1, "actor": "system"}  # fmt: skip
    alert = world.slack.wait_for(lambda: next((m for m in world.slack.messages_in(ALERTS) if "gave up" in m["text"]), None))
    assert f"Inbox row {entry} (`click`) was claimed {MAX_ATTEMPTS + 1} times" in alert["text"]

    # One attempt fewer still runs: the cap is the fifth lapsed claim, not earlier.
    last = _insert(world, "last-try", body, _sealer(world).mac(MAC_PURPOSE, "last-try", "click", payload),
                   attempts=MAX_ATTEMPTS - 1, claimed_by="dead-worker", claimed_until=lapsed)  # fmt: skip
    world.wait_audit(rid, "issued")
    world.slack.wait_for(lambda: _done(world, last) or None)


def test_every_claim_counts_an_attempt_and_a_foreign_mac_is_not_genuine(db_url: str):
    engine = make_engine(db_url)
    upgrade(engine)
    sealer = Sealer(b"k" * 32)
    inbox = SqlInbox(SqlStore(engine), sealer)
    now = datetime.now(UTC)
    work = Work("click", {"body": {"user": {"id": APPROVER}}})
    entry = inbox.receive("k1", now + timedelta(minutes=6), work, "dead-worker", now)
    assert entry is not None
    seen = []
    for _ in range(MAX_ATTEMPTS + 1):
        now += inbox.claims.lease + timedelta(seconds=1)  # the lease lapses each time: the worker died again
        [row] = inbox.claim_received("worker", now, limit=4)
        seen.append((row.attempts, row.genuine, row.work))
    assert seen == [(n, True, work) for n in range(2, MAX_ATTEMPTS + 3)]
    # Another key (a different process's seal key, or a row the insider re-keyed) proves nothing.
    other = SqlInbox(SqlStore(engine), Sealer(b"x" * 32))
    now += inbox.claims.lease + timedelta(seconds=1)
    [row] = other.claim_received("worker", now, limit=4)
    assert not row.genuine and row.work.args == {}
    # A bot without a key records and runs rows unauthenticated (the documented choice; start-up warns).
    plain = SqlInbox(SqlStore(engine))
    assert plain.receive("k2", now + timedelta(minutes=6), work, None, now) is not None
    claimed = plain.claim_received("worker", now, limit=4)
    assert [(r.genuine, r.attempts) for r in claimed if r.id != entry] == [(True, 1)]
