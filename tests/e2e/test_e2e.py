"""End to end: signed Slack requests over HTTP into the real app, real OpenBao, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest

from devkit.standin import message_text as shown
from tests.conftest import APPROVER, APPROVER_2, APPROVER_3, AUDITOR, OUTSIDER, REQUESTER, World


def request_id_from(ack: dict | str) -> str:
    text = ack["text"] if isinstance(ack, dict) else ack
    return text.split("`")[1]


def ask(world: World, text: str, user: str = REQUESTER) -> str:
    status, body = world.client.slash(user, text)
    assert status == 200, body
    assert "Request `JIT-" in body["text"], body
    return request_id_from(body)


def approval_message(world: World, request_id: str) -> dict:
    return world.slack.wait_for(lambda: world.slack.find_message(lambda m: request_id in shown(m) and "Approve" in shown(m)))


def test_happy_path_credential_works_with_exactly_the_scope(world: World):
    world.vault.secrets.kv.v2.create_or_update_secret(
        path="payments/stripe", secret={"key": "sk_live_demo"}, mount_point="secret"
    )
    rid = ask(world, "payments-read 30m INC-4411 replay stuck refunds")
    message = approval_message(world, rid)
    for part in ("<@U0DEV0001>", "payments-read", "30m", "INC-4411 replay stuck refunds", rid, "[Approve]", "[Deny]"):
        assert part in shown(message), shown(message)
    assert message["channel"].startswith(("G", "C")), "approvers share one group DM"

    status, _ = world.client.click(APPROVER, "approve", rid)
    assert status == 200
    token = world.unwrap(world.wrapping_token(REQUESTER, rid))
    user = hvac.Client(url=world.vault_addr, token=token)
    info = user.auth.token.lookup_self()["data"]
    assert sorted(info["policies"]) == ["default", "payments-read"]
    assert info["explicit_max_ttl"] == 1800 and 1790 <= info["ttl"] <= 1800 and info["renewable"] is False
    assert info["orphan"] is True
    assert info["meta"] == {"request_id": rid, "requester": REQUESTER, "scope": "payments-read"}
    assert user.secrets.kv.v2.read_secret_version(path="payments/stripe", mount_point="secret", raise_on_deleted_version=True)
    with pytest.raises(Forbidden):
        user.secrets.kv.v2.read_secret_version(path="k8s/prod", mount_point="secret", raise_on_deleted_version=True)

    # The approvers' message was updated in place and the requester was told.
    updated = world.slack.wait_for(
        lambda: (m := world.slack.find_message(lambda m: m["ts"] == message["ts"])) and "Active" in shown(m) and m
    )
    assert "approved by <@U0APPR001>" in shown(updated) and "[Approve]" not in shown(updated)
    assert any("was approved by" in shown(m) and rid in shown(m) for m in world.slack.dm_messages(REQUESTER))
    # test_worker_process reuses this test with a 2 s remind_after: a slow machine may legitimately remind first.
    assert [e for e in world.audit_names(rid) if e != "reminded"] == ["requested", "approved", "issued"]
    issued = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'issued'")[0][0]
    assert info["accessor"] in issued


def test_early_revoke_kills_the_token(world: World):
    rid = ask(world, "payments-read 30m INC-1 check")
    world.client.click(APPROVER, "approve", rid)
    token = world.unwrap(world.wrapping_token(REQUESTER, rid))
    status, _ = world.client.slash(REQUESTER, f"revoke {rid}")
    assert status == 200
    name = world.client.last_response_name
    reply = world.slack.wait_for(lambda: world.slack.responses_to(name))
    assert "Revoked" in reply[0]["text"] and rid in reply[0]["text"]
    with pytest.raises(Forbidden):
        hvac.Client(url=world.vault_addr, token=token).auth.token.lookup_self()
    assert world.audit_names(rid)[-1] == "revoked"
    world.slack.wait_for(
        lambda: any("was revoked by you" in shown(m) and rid in shown(m) for m in world.slack.dm_messages(REQUESTER))
    )


def test_expiry_revokes_on_time(world: World):
    rid = ask(world, "db-admin-staging 2s staging migration")
    world.client.click(APPROVER, "approve", rid)
    token = world.unwrap(world.wrapping_token(REQUESTER, rid))
    world.wait_audit(rid, "expired", timeout=10)
    lag = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'expired'")[0][0]
    assert '"lag_seconds":' in lag and float(lag.split('"lag_seconds":')[1].split(",")[0].rstrip("}")) < 1.5
    with pytest.raises(Forbidden):
        hvac.Client(url=world.vault_addr, token=token).auth.token.lookup_self()
    world.slack.wait_for(lambda: any("ended at" in shown(m) and rid in shown(m) for m in world.slack.dm_messages(REQUESTER)))
    message = world.slack.wait_for(
        lambda: (m := world.slack.find_message(lambda m: rid in shown(m) and "Expired" in shown(m))) and m
    )
    assert "[Approve]" not in shown(message)


def test_refused_decisions_and_revokes_are_audited(world: World):
    rid = ask(world, "payments-read 10m INC-2 look", user=APPROVER_3)  # an approver asking for themselves
    approval_message(world, rid)
    for clicker, expected in ((APPROVER_3, "own request"), (OUTSIDER, "not an approver")):
        world.client.click(clicker, "approve", rid)
        name = world.client.last_response_name
        reply = world.slack.wait_for(lambda n=name: world.slack.responses_to(n))
        assert expected in reply[0]["text"] and reply[0].get("response_type") == "ephemeral"
    world.client.click(APPROVER, "approve", rid)
    world.wait_audit(rid, "issued")
    world.client.slash(OUTSIDER, f"revoke {rid}")
    name = world.client.last_response_name
    assert "Only the requester" in world.slack.wait_for(lambda: world.slack.responses_to(name))[0]["text"]
    rejected = world.rows(
        f"SELECT actor, detail FROM audit_events WHERE event = 'rejected' AND request_id = '{rid}' ORDER BY seq"
    )
    assert [(a, r.split('"rule":"')[1].split('"')[0]) for a, r in rejected] == [
        (APPROVER_3, "self_approval"),
        (OUTSIDER, "not_an_approver"),
        (OUTSIDER, "not_allowed_to_revoke"),
    ]
    assert world.rows(f"SELECT state FROM requests WHERE id = '{rid}'")[0][0] == "active"


def test_racing_approvers_and_double_clicks_issue_one_credential(world: World):
    rid = ask(world, "payments-read 10m INC-3 race")
    approval_message(world, rid)
    clickers = [APPROVER, APPROVER, APPROVER_2, APPROVER_2, APPROVER_3, APPROVER_3]
    barrier = threading.Barrier(len(clickers))

    def click(user: str) -> None:
        barrier.wait()
        world.client.click(user, "approve", rid)

    threads = [threading.Thread(target=click, args=(u,)) for u in clickers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    world.wait_audit(rid, "issued")
    world.bot.runtime.drain()
    time.sleep(0.3)  # let every losing click finish its reply
    names = world.audit_names(rid)
    assert names.count("approved") == 1 and names.count("issued") == 1
    credential_dms = [m for m in world.slack.dm_messages(REQUESTER) if "unwrap" in shown(m)]
    assert len(credential_dms) == 1
    accessors = world.vault.list("auth/token/accessors")["data"]["keys"]
    assert sum(1 for a in accessors if (alive_token(world, a).get("meta") or {}).get("request_id") == rid) == 1


def alive_token(world: World, accessor: str) -> dict[str, Any]:
    """The token behind `accessor`, or {} when it ended between the listing and the lookup (an unwrapped wrap)."""
    try:
        data: dict[str, Any] = world.vault.auth.token.lookup_accessor(accessor)["data"]
    except InvalidRequest:
        return {}
    return data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nosuch 10m INC-1 x", "neither a subcommand"),
        ("payments-read 3h INC-1 x", "1m to 1h"),
        ("payments-read 10x INC-1 x", "not a duration"),
        ("payments-read 0m INC-1 x", "zero"),
        ("payments-read 10m", "needs a reason"),
        ("payments-write 10m no ticket", "must match"),
        ("frobnicate", "neither a subcommand"),
        ("revoke", "takes one request ID"),
        ("audit --format xml", "not a format"),
    ],
)
def test_bad_slash_input_gets_a_clear_ephemeral_error_and_stores_nothing(world: World, text, expected):
    user = APPROVER if text.startswith("payments-write") else REQUESTER
    status, body = world.client.slash(user, text)
    assert status == 200
    assert expected in body["text"] and body.get("response_type", "ephemeral") == "ephemeral", body
    assert "Type `/elevate" in body["text"]
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 0
    assert world.slack.calls_to("chat.postMessage") == []


def test_unknown_request_id_is_a_clear_error(world: World):
    world.client.slash(REQUESTER, "revoke JIT-NOPE1234")
    name = world.client.last_response_name
    reply = world.slack.wait_for(lambda: world.slack.responses_to(name))[0]
    assert "no request `JIT-NOPE1234`" in reply["text"] and "/elevate list" in reply["text"]


def test_bad_or_stale_signatures_are_refused_and_store_nothing(world: World):
    body = "command=%2Felevate&text=payments-read+10m+INC-1+x&user_id=U0DEV0001&team_id=T0JITBOT"
    headers = world.client.sign(body)
    status, _ = world.client.raw(body.replace("10m", "50m"), headers)
    assert status == 401
    status, _ = world.client.raw(body, world.client.sign(body, timestamp=int(time.time()) - 600))
    assert status == 401
    status, _ = world.client.raw(body, {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"})
    assert status == 401
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 0
    assert world.rows("SELECT count(*) FROM audit_events")[0][0] == 0


def test_list_help_and_deny(world: World):
    rid = ask(world, "payments-read 10m INC-5 list me")
    _, mine = world.client.slash(REQUESTER, "list")
    assert rid in mine["text"] and "Waiting for approval" in mine["text"]
    _, theirs = world.client.slash(APPROVER, "list")
    assert "Waiting on you" in theirs["text"] and rid in theirs["text"]
    _, help_ = world.client.slash(REQUESTER, "help")
    assert "/elevate revoke &lt;request-id&gt;" in help_["text"]
    approval_message(world, rid)
    world.client.click(APPROVER, "deny", rid)
    world.slack.wait_for(lambda: any(v["view"].get("callback_id") == "deny_modal" for v in world.slack.views.values()))
    world.client.submit_view(APPROVER, "deny_modal", {"reason": {"value": ""}})
    world.slack.wait_for(lambda: any("denied" in shown(m) and rid in shown(m) for m in world.slack.dm_messages(REQUESTER)))
    world.client.click(APPROVER_2, "approve", rid)
    name = world.client.last_response_name
    assert "already decided" in world.slack.wait_for(lambda: world.slack.responses_to(name))[0]["text"]
    assert [e for e in world.audit_names(rid) if e != "reminded"] == ["requested", "denied"]  # see above: remind_after


def test_request_form(world: World):
    status, _ = world.client.slash(REQUESTER, "")
    assert status == 200
    view = world.slack.wait_for(
        lambda: next((v for v in world.slack.views.values() if v["view"].get("callback_id") == "request_modal"), None)
    )
    options = [o["value"] for o in view["view"]["blocks"][0]["element"]["options"]]
    assert "payments-read" in options and "payments-write" not in options
    scope = {"type": "static_select", "selected_option": {"value": "payments-read"}}
    status, body = world.client.submit_view(
        REQUESTER, "request_modal", {"scope": {"value": scope}, "duration": {"value": "9h"}, "reason": {"value": "INC-9"}}
    )
    assert status == 200 and body["response_action"] == "errors" and "1m to 1h" in body["errors"]["duration"]
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 0
    status, body = world.client.submit_view(
        REQUESTER, "request_modal", {"scope": {"value": scope}, "duration": {"value": "20m"}, "reason": {"value": "INC-9 form"}}
    )
    assert status == 200
    world.slack.wait_for(lambda: any("Request `JIT-" in shown(m) for m in world.slack.dm_messages(REQUESTER)))
    assert world.rows("SELECT scope, duration_seconds, reason FROM requests") == [("payments-read", 1200, "INC-9 form")]


def test_audit_export_in_slack_for_auditors_only(world: World):
    rid = ask(world, "payments-read 10m INC-6 audit me")
    _, refused = world.client.slash(REQUESTER, "audit")
    assert "Only auditors" in refused["text"]
    status, _body = world.client.slash(AUDITOR, "audit --since 1d --format jsonl")
    assert status == 200
    upload = world.slack.wait_for(
        lambda: next((f for f in world.slack.files.values() if f.get("channel") and f.get("content")), None)
    )
    content = upload["content"].decode()
    lines = content.strip().splitlines()
    assert rid in content and all(line.startswith('{"seq":') for line in lines)
    assert upload["channel"].startswith("D")
    events = [r[0] for r in world.rows("SELECT event FROM audit_events ORDER BY seq")]
    assert events[-2:] == ["rejected", "exported"] or events[-1] == "exported"


def test_healthz(world: World):
    import json
    import urllib.request

    with urllib.request.urlopen(f"{world.bot.url}/healthz", timeout=5) as response:
        assert response.status == 200
        assert json.load(response) == {"database": "ok", "vault": "ok", "scheduler": "ok", "anchor": "ok", "role": "serve"}


def test_metrics_follow_the_audit_trail(world: World):
    import urllib.request

    rid = ask(world, "db-admin-staging 2s metrics")
    world.client.click(APPROVER, "approve", rid)
    world.wait_audit(rid, "issued")

    def scrape() -> str:
        with urllib.request.urlopen(f"{world.bot.url}/metrics", timeout=5) as response:
            return response.read().decode()

    text = scrape()
    assert 'jitbot_audit_events_total{event="issued"} 1.0' in text
    assert "jitbot_active_grants 1.0" in text and "jitbot_issue_seconds_count 1.0" in text
    assert 'jitbot_decisions_total{decision="approved"} 1.0' in text
    world.wait_audit(rid, "expired", timeout=10)
    text = scrape()
    assert "jitbot_active_grants 0.0" in text and "jitbot_revocation_lag_seconds_count 1.0" in text
    assert 'jitbot_request_outcomes_total{outcome="expired"} 1.0' in text


def test_a_reason_cannot_ping_everyone_or_fake_a_mention(world: World):
    rid = ask(world, "payments-read 10m INC-1 <!channel> approved by <@U0APPR001> <https://evil.example|docs>")
    message = approval_message(world, rid)
    reason_field = next(
        f["text"] for b in message["blocks"] if b.get("fields") for f in b["fields"] if f["text"].startswith("*Reason*")
    )
    assert "<!channel>" not in reason_field and "&lt;!channel&gt;" in reason_field
    assert "<@U0APPR001>" not in reason_field and "<https://" not in reason_field
