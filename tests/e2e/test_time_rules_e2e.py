"""Time rules end to end through Slack on real OpenBao and both databases: a request with a later start is approved
ahead, and the credential is issued at the start (not before), living exactly the approved time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hvac
import pytest

from devkit.standin import message_text as shown
from tests.conftest import APPROVER, REQUESTER, World
from tests.e2e.test_e2e import approval_message, request_id_from

pytestmark = pytest.mark.timeout(180)


def test_a_scheduled_start_is_approved_ahead_and_issued_at_the_start(world: World) -> None:
    start = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
    status, body = world.client.slash(REQUESTER, f"payments-read 2m at {start.isoformat()} CHG-12 deploy")
    assert status == 200 and f"(2m) from {start:%Y-%m-%d %H:%M:%S} UTC sent to" in body["text"], body
    rid = request_id_from(body)
    approval_message(world, rid)
    world.client.click(APPROVER, "approve", rid)
    world.wait_audit(rid, "approved")
    told = world.slack.wait_for(
        lambda: next(
            (m for m in world.slack.dm_messages(REQUESTER) if rid in shown(m) and "issued at its start" in shown(m)), None
        )
    )
    assert f"{start:%Y-%m-%d %H:%M:%S} UTC" in shown(told)
    assert "issued" not in world.audit_names(rid) and datetime.now(UTC) < start  # nothing before the start
    world.wait_audit(rid, "issued", timeout=60)
    assert world.bot.runtime is not None
    grant = world.bot.runtime.store.get(rid).grant  # type: ignore[union-attr]
    assert grant is not None
    issued_at = grant.issued_at
    assert start <= issued_at < start + timedelta(seconds=30), (start, issued_at)
    print(f"scheduled {start:%H:%M:%S}, issued {issued_at:%H:%M:%S.%f}")
    token = world.unwrap(world.wrapping_token(REQUESTER, rid, timeout=30))
    info = hvac.Client(url=world.vault_addr, token=token).auth.token.lookup_self()["data"]
    assert info["policies"] == ["default", "payments-read"] and 100 <= info["ttl"] <= 120


def test_an_approver_approves_for_less_in_slack_and_the_requester_sees_it(world: World) -> None:
    status, body = world.client.slash(REQUESTER, "payments-read 1h INC-7 look at refunds")
    rid = request_id_from(body)
    message = approval_message(world, rid)
    select = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if e["type"] == "static_select")
    assert [o["text"]["text"] for o in select["options"]] == ["5m", "15m", "30m"]  # shorter than asked, never longer
    status, _ = world.client.choose(APPROVER, "approve_for", f"{rid}:r@15m")
    assert status == 200
    world.wait_audit(rid, "issued")
    told = world.slack.wait_for(
        lambda: next((m for m in world.slack.dm_messages(REQUESTER) if rid in shown(m) and "less than the 1h" in shown(m)), None)
    )
    assert "approved by <@U0APPR001> for 15m" in shown(told)
    info = hvac.Client(url=world.vault_addr, token=world.unwrap(world.wrapping_token(REQUESTER, rid))).auth.token.lookup_self()[
        "data"
    ]
    assert info["explicit_max_ttl"] == 900


def test_the_request_form_takes_a_later_start(world: World) -> None:
    world.client.slash(REQUESTER, "")
    world.slack.wait_for(lambda: any(v["view"].get("callback_id") == "request_modal" for v in world.slack.views.values()))
    scope = {"type": "static_select", "selected_option": {"value": "payments-read"}}
    values = {
        "scope": {"value": scope},
        "duration": {"value": "20m"},
        "start": {"value": "tomorrow"},
        "reason": {"value": "CHG-3"},
    }
    status, body = world.client.submit_view(REQUESTER, "request_modal", values)
    assert status == 200 and body["response_action"] == "errors" and "is not a start time" in body["errors"]["start"], body
    start = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    values["start"] = {"value": f"{start:%H:%M}"}
    status, _ = world.client.submit_view(REQUESTER, "request_modal", values)
    assert status == 200
    world.slack.wait_for(lambda: any(f"from {start:%Y-%m-%d %H:%M}" in shown(m) for m in world.slack.dm_messages(REQUESTER)))
    assert world.rows("SELECT count(*) FROM requests WHERE starts_at IS NOT NULL")[0][0] == 1
