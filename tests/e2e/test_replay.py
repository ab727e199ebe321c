"""A signed request is acted on once: replays are refused and audited, Slack's event retries are dropped,
across replicas sharing one database; requests from another workspace are refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn
from devkit.standin import message_text as shown
from grants.adapters.inbox_store import SqlInbox
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine
from grants.inbox import Work
from tests.conftest import (
    APPROVER,
    APPROVER_2,
    BOT_TOKEN,
    REQUESTER,
    USERS,
    SettlingClient,
    World,
    local_bot,
    make_catalog_dir,
)
from tests.databases import fresh_database


class Recorder:
    """Keeps every (body, headers) the signed client sends, so a test can send one again verbatim."""

    def __init__(self, client: SignedSlackClient):
        self.sent: list[tuple[str | bytes, dict[str, str]]] = []
        inner = client.raw

        def raw(body: str | bytes, headers: Any) -> tuple[int, Any]:
            self.sent.append((body, dict(headers)))
            return inner(body, headers)

        client.raw = raw  # type: ignore[method-assign]


def rejected(world: World) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in world.rows("SELECT actor, detail FROM audit_events WHERE event = 'rejected' ORDER BY seq")]


def test_a_replayed_slash_command_is_refused_and_audited(world: World):
    recorder = Recorder(world.client)
    status, body = world.client.slash(REQUESTER, "payments-read 30m INC-77 replay-secret-words")
    assert status == 200 and "Request `JIT-" in body["text"], body
    again = world.client.raw(*recorder.sent[-1])
    assert again == (200, {"response_type": "ephemeral", "text": again[1]["text"]})
    assert "already processed" in again[1]["text"]
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 1
    [(actor, detail)] = rejected(world)
    assert actor == REQUESTER and json.loads(detail) == {"action": "slack_request", "rule": "replayed_request"}
    assert "replay-secret-words" not in detail


def test_a_replayed_approve_click_does_nothing(world: World):
    recorder = Recorder(world.client)
    rid = world.client.slash(REQUESTER, "staging-read 1h")[1]["text"].split("`")[1]  # auto-approved, active
    status, _ = world.client.slash(REQUESTER, f"extend {rid} 1h")
    assert status == 200
    rid2 = world.client.slash(REQUESTER, "payments-read 30m INC-1 first")[1]["text"].split("`")[1]
    world.slack.wait_for(lambda: world.slack.find_message(lambda m: rid2 in str(m) and "Approve" in str(m)))
    status, _ = world.client.click(APPROVER, "approve", rid2)
    assert status == 200
    world.wait_audit(rid2, "issued")
    click = recorder.sent[-1]
    assert world.client.raw(*click)[0] == 200  # Slack shows a failure for any other status; nothing is done
    time.sleep(0.3)
    assert world.audit_names(rid2) == ["requested", "approved", "issued"]
    assert [a for a, d in rejected(world) if "replayed_request" in d] == [APPROVER]


def test_a_retried_event_is_processed_once(world: World):
    before = len(world.slack.calls_to("views.publish"))
    body = home_opened_event(world.client.team_id, "Ev0RETRY0001")
    for n, retry in enumerate(("", "1", "2")):
        headers = {"Content-Type": "application/json", **world.client.sign(body, int(time.time()) + n)}
        if retry:  # Slack's retry: same event_id, a fresh signature
            headers |= {"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"}
        assert world.client.raw(body, headers)[0] == 200
    time.sleep(0.5)
    assert len(world.slack.calls_to("views.publish")) - before == 1
    assert rejected(world) == [], "Slack's own retries are not refusals"
    # Another event (a new event_id) is processed.
    body = home_opened_event(world.client.team_id, "Ev0RETRY0002")
    assert world.client.raw(body, {"Content-Type": "application/json", **world.client.sign(body)})[0] == 200
    world.slack.wait_for(lambda: len(world.slack.calls_to("views.publish")) - before == 2)


def test_a_request_from_another_workspace_is_refused_and_audited(world: World):
    stranger = SettlingClient(world.bot, world.slack, team_id="T0OTHERWS")
    status, body = stranger.slash(REQUESTER, "payments-read 30m INC-9 from elsewhere")
    assert status == 403 and "one workspace" in body["text"], body
    status, _ = stranger.click(APPROVER, "approve", "JIT-AAAAAAAA")
    assert status == 403
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 0
    assert [(a, json.loads(d)["rule"]) for a, d in rejected(world)] == [
        (REQUESTER, "foreign_workspace"),
        (APPROVER, "foreign_workspace"),
    ]
    # Our own workspace (learned from auth.test) is still served.
    status, body = world.client.slash(REQUESTER, "payments-read 30m INC-9 from here")
    assert status == 200 and "Request `JIT-" in body["text"]


def test_the_inbox_records_a_key_once_and_purges_expired_done_keys(db_url: str):
    engine = make_engine(db_url)
    upgrade(engine)
    inbox = SqlInbox(SqlStore(engine))
    now = datetime.now(UTC)
    assert inbox.receive("k1", now + timedelta(minutes=6), None, None, now) is not None
    assert inbox.receive("k1", now + timedelta(minutes=6), None, None, now) is None
    assert inbox.receive("old", now - timedelta(seconds=1), None, None, now) is not None
    # Work not yet done is never purged, however old its key: it is an acked promise.
    assert inbox.receive("undone", now - timedelta(seconds=1), Work("click", {"body": {}}), None, now) is not None
    assert inbox.purge(now) == 1
    with engine.connect() as connection:
        keys = sorted(r[0] for r in connection.exec_driver_sql("SELECT key FROM inbox"))
    assert keys == ["k1", "undone"]


@pytest.fixture
def two_replicas(tmp_path, openbao, bot_vault_token) -> Iterator[tuple[SlackStandIn, World, World]]:
    with fresh_database("postgresql", tmp_path) as url, SlackStandIn(BOT_TOKEN, users=USERS) as slack:
        replica = dict(db_url=url, catalog=make_catalog_dir(tmp_path) / "catalog.toml", slack=slack)
        with (
            local_bot(tmp_path, openbao.addr, bot_vault_token, **replica) as first,
            local_bot(tmp_path, openbao.addr, bot_vault_token, **replica) as second,
        ):
            yield slack, first, second


def test_two_replicas_on_one_postgresql_process_a_signed_body_once(two_replicas):
    _, first, second = two_replicas
    recorder = Recorder(first.client)
    status, body = first.client.slash(REQUESTER, "payments-read 30m INC-5 once only")  # settled: the request is made
    assert status == 200 and "Request `JIT-" in body["text"]
    status, body = second.client.raw(*recorder.sent[-1])
    assert status == 200 and "already processed" in body["text"]
    assert first.bot.runtime is not None
    with first.bot.runtime.store.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM requests").scalar_one() == 1
        rule = connection.exec_driver_sql("SELECT detail FROM audit_events WHERE event = 'rejected'").scalar_one()
    assert json.loads(rule)["rule"] == "replayed_request"


def home_opened_event(team_id: str, event_id: str) -> str:
    return json.dumps(
        {
            "token": "unused",
            "team_id": team_id,
            "api_app_id": "A0JITBOT",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": {
                "type": "app_home_opened",
                "user": REQUESTER,
                "channel": "D0HOME",
                "tab": "home",
                "event_ts": f"{time.time():.6f}",
            },
        }
    )


def test_two_replicas_on_one_postgresql_process_a_retried_event_once(two_replicas):
    """Slack retries an event to whichever replica its load balancer picks: the event_id is claimed in the shared
    database, so the first delivery is processed and the retries (to either replica) are not."""
    slack, first, second = two_replicas
    clients = [first.client, second.client, first.client]
    body = home_opened_event(clients[0].team_id, "Ev0TWOREPLICAS1")
    for n, client in enumerate(clients):
        headers = {"Content-Type": "application/json", **client.sign(body, int(time.time()) + n)}
        if n:  # Slack's retry: the same event_id, a fresh signature, maybe another replica
            headers |= {"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"}
        assert client.raw(body, headers)[0] == 200
    # A new event behind them, on the second replica: once it is published, the retries had their chance too.
    later = home_opened_event(clients[1].team_id, "Ev0TWOREPLICAS2")
    assert clients[1].raw(later, {"Content-Type": "application/json", **clients[1].sign(later)})[0] == 200
    slack.wait_for(lambda: len(slack.calls_to("views.publish")) >= 2)
    time.sleep(0.5)  # a duplicate publish would land within this
    assert len(slack.calls_to("views.publish")) == 2, "each event_id once, whichever replica got it"
    assert first.bot.runtime is not None
    with first.bot.runtime.store.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM audit_events WHERE event = 'rejected'").scalar_one() == 0


def test_the_approve_shown_for_a_denied_extension_does_not_approve_the_next_ask(world: World):
    """A denied 10m extension leaves its Approve button in Slack (or in a captured request): clicked again once the
    requester asks for 40m, it names the denied ask and is refused as out of date, not taken for the new one.
    (50m in all: within any cap the session's token role for the scope may have been synced with.)"""

    def last_reply() -> str:
        name = world.client.last_response_name
        return str(world.slack.wait_for(lambda: world.slack.responses_to(name))[-1]["text"])

    def approve_value(*parts: str) -> str:
        message = world.slack.wait_for(
            lambda: world.slack.find_message(lambda m: all(p in shown(m) for p in parts) and "[Approve]" in shown(m))
        )
        return next(
            str(e["value"]) for b in message["blocks"] for e in b.get("elements") or [] if e.get("action_id") == "approve"
        )

    rid = world.client.slash(REQUESTER, "payments-read 10m INC-88 long replay")[1]["text"].split("`")[1]
    world.client.click(APPROVER, "approve", rid)
    world.wait_audit(rid, "issued")
    assert world.client.slash(REQUESTER, f"extend {rid} 10m")[0] == 200
    denied_ask = approve_value(rid, "asks to extend by *10m*")
    world.client.click(APPROVER, "deny", denied_ask)
    world.slack.wait_for(lambda: any(v["view"].get("callback_id") == "deny_modal" for v in world.slack.views.values()))
    world.client.submit_view(APPROVER, "deny_modal", {"reason": {"value": ""}})
    world.wait_audit(rid, "extension_denied")
    assert world.client.slash(REQUESTER, f"extend {rid} 40m")[0] == 200
    new_ask = approve_value(rid, "asks to extend by *40m*")
    assert new_ask != denied_ask

    world.client.click(APPROVER_2, "approve", denied_ask)  # the old button, freshly signed: the replay cache passes it
    assert "out of date" in last_reply()
    assert [(a, json.loads(d)["rule"]) for a, d in rejected(world)] == [(APPROVER_2, "stale_decision")]
    assert world.rows(f"SELECT duration_seconds, extension_pending_seconds FROM requests WHERE id = '{rid}'") == [(600, 2400)]
    assert "extended" not in world.audit_names(rid)
    world.client.click(APPROVER_2, "approve", new_ask)
    world.wait_audit(rid, "extended")
    assert world.rows(f"SELECT duration_seconds, extension_pending_seconds FROM requests WHERE id = '{rid}'") == [(3000, None)]
