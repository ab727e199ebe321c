"""Deny with a reason, cancel, the App Home tab and approval threads, end to end over signed HTTP."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from bot import home
from bot.blocks import button
from devkit.standin import message_text as shown
from devkit.standin import render_blocks
from grants.credentials import CredentialHandle
from grants.domain import Grant, Request, State
from tests.conftest import APPROVER, APPROVER_2, APPROVER_3, AUDITOR, OUTSIDER, REQUESTER, World

_events = itertools.count(1)


@pytest.fixture
def w(world: World) -> World:
    return world


# ---- what people do in Slack -----------------------------------------------------------------------


def ask(w: World, text: str, user: str = REQUESTER) -> str:
    status, body = w.client.slash(user, text)
    assert status == 200 and "Request `JIT-" in body["text"], body
    return body["text"].split("`")[1]


def reply_to_last(w: World) -> dict[str, Any]:
    name = w.client.last_response_name
    return w.slack.wait_for(lambda: w.slack.responses_to(name))[-1]


def approval_message(w: World, rid: str) -> dict[str, Any]:
    return w.slack.wait_for(lambda: w.slack.find_message(lambda m: rid in shown(m) and "[Approve]" in shown(m)))


def current(w: World, message: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in w.slack.messages_in(message["channel"]) if m["ts"] == message["ts"])


def thread(w: World, message: dict[str, Any]) -> list[str]:
    return [shown(m) for m in w.slack.messages_in(message["channel"]) if m.get("thread_ts") == message["ts"]]


def deny_modals(w: World, user: str | None = None) -> list[dict[str, Any]]:
    return [
        v["view"]
        for v in w.slack.views.values()
        if v["kind"] == "modal" and v["view"].get("callback_id") == "deny_modal" and user in (None, v["user"])
    ]


def dm_with(w: World, user: str, *parts: str) -> dict[str, Any]:
    return w.slack.wait_for(lambda: next((m for m in w.slack.dm_messages(user) if all(p in shown(m) for p in parts)), None))


def post(w: World, body: str, content_type: str) -> int:
    status, answer = w.client.raw(body, {"Content-Type": content_type, **w.client.sign(body)})
    assert status == 200, answer
    return status


def open_home(w: World, user: str, tab: str = "home") -> None:
    """Slack's app_home_opened event, as it arrives when `user` opens the app's Home (or Messages) tab."""
    event = {
        "type": "app_home_opened",
        "user": user,
        "channel": w.slack.dm_channel_id(user),
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    body = {
        "token": "unused",
        "team_id": w.slack.team_id,
        "api_app_id": "A0JITBOT",
        "type": "event_callback",
        "event_id": f"Ev{next(_events):08d}",
        "event_time": int(time.time()),
        "event": event,
    }
    post(w, json.dumps(body), "application/json")


def home_of(w: World, user: str) -> str:
    view = w.slack.views.get("VHOME" + user)
    return render_blocks(view["view"]["blocks"]) if view else ""


def wait_home(w: World, user: str, *parts: str, absent: tuple[str, ...] = ()) -> str:
    def ready() -> str | None:
        text = home_of(w, user)
        return text if text and all(p in text for p in parts) and not any(a in text for a in absent) else None

    return w.slack.wait_for(ready, message=f"Home of {user}")


def click_home(w: World, user: str, action_id: str, rid: str, view: dict[str, Any] | None = None) -> None:
    """A button in `user`'s Home tab (as published, or the given one): Slack sends the view, a trigger_id, no response_url."""
    view = view or w.slack.views["VHOME" + user]["view"]
    found = [
        (b.get("block_id", ""), e)
        for b in view["blocks"]
        for e in [*b.get("elements", []), b.get("accessory") or {}]
        if e.get("action_id") == action_id and str(e.get("value", "")).partition(":")[0] == rid
    ]
    assert found, f"no {action_id} button for {rid} in the Home of {user}:\n{home_of(w, user)}"
    block_id, button = found[0]
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": w.slack.team_id},
        "api_app_id": "A0JITBOT",
        "token": "unused",
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": w.slack.trigger_id(user),
        "team": {"id": w.slack.team_id, "domain": "jitbot-dev"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": view,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": button["text"],
                "value": rid,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    post(w, urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


def rejected(w: World, rid: str) -> list[tuple[str, str, str]]:
    rows = w.rows(f"SELECT actor, detail FROM audit_events WHERE event = 'rejected' AND request_id = '{rid}' ORDER BY seq")
    return [(actor, json.loads(d)["rule"], json.loads(d)["action"]) for actor, d in rows]


def state_of(w: World, rid: str) -> str:
    return w.rows(f"SELECT state FROM requests WHERE id = '{rid}'")[0][0]


# ---- deny with a reason -------------------------------------------------------------------------------


def test_deny_asks_for_a_reason_that_the_requester_reads(w: World):
    rid = ask(w, "payments-read 10m INC-7 look at refunds")
    message = approval_message(w, rid)
    status, _ = w.client.click(APPROVER, "deny", rid)
    assert status == 200
    modal = w.slack.wait_for(
        lambda: next((v for v in deny_modals(w, APPROVER) if v["private_metadata"].partition(":")[0] == rid), None)
    )
    assert "INC-7 look at refunds" in render_blocks(modal["blocks"])
    assert w.audit_names(rid) == ["requested"], "opening the form decides nothing"

    status, body = w.client.submit_view(APPROVER, "deny_modal", {"reason": {"value": "use the  replica,\nnot prod"}})
    assert status == 200 and not body, body  # the modal closes
    dm = dm_with(w, REQUESTER, rid, "denied by")
    assert "Reason: use the replica, not prod" in shown(dm)
    assert w.audit_names(rid) == ["requested", "denied"]
    detail = w.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'denied'")[0][0]
    assert json.loads(detail)["reason"] == "use the replica, not prod"
    w.slack.wait_for(lambda: "Denied" in shown(current(w, message)))
    assert "[Approve]" not in shown(current(w, message))
    w.slack.wait_for(lambda: thread(w, message))
    lines = thread(w, message)
    assert len(lines) == 1 and lines[0].startswith(f"{rid}: :no_entry: Denied by <@{APPROVER}>")


def test_deny_refusals_never_show_the_form_and_are_audited(w: World):
    rid = ask(w, "payments-read 10m INC-8 my own", user=APPROVER_3)  # an approver of the scope asking for themselves
    approval_message(w, rid)
    for clicker, expected in ((APPROVER_3, "own request"), (OUTSIDER, "not an approver")):
        w.client.click(clicker, "deny", rid)
        reply = reply_to_last(w)
        assert expected in reply["text"] and reply["response_type"] == "ephemeral" and not reply["replace_original"]
    # A hand-made submission (the request ID in private_metadata) meets the same check in the service.
    status, body = w.client.submit_view(OUTSIDER, "deny_modal", {"reason": {"value": "because"}}, private_metadata=rid)
    assert status == 200 and body["response_action"] == "update"
    assert "not an approver" in render_blocks(body["view"]["blocks"])
    assert deny_modals(w) == []
    assert rejected(w, rid) == [  # OUTSIDER's second try is the same burst: counted when it ends, not a second row
        (APPROVER_3, "self_approval", "deny"),
        (OUTSIDER, "not_an_approver", "deny"),
    ]
    assert state_of(w, rid) == "pending"


def test_a_request_decided_while_the_deny_form_is_open_stays_decided(w: World):
    rid = ask(w, "payments-read 10m INC-11 race the form")
    approval_message(w, rid)
    w.client.click(APPROVER, "deny", rid)
    w.slack.wait_for(lambda: deny_modals(w, APPROVER))
    w.client.click(APPROVER_2, "approve", rid)
    w.wait_audit(rid, "issued")
    status, body = w.client.submit_view(APPROVER, "deny_modal", {"reason": {"value": "too late"}})
    assert status == 200 and body["response_action"] == "update"
    assert "already decided" in render_blocks(body["view"]["blocks"])
    w.client.click(APPROVER_3, "deny", rid)  # an old copy of the message: no form for a decided request
    assert "already decided" in reply_to_last(w)["text"]
    assert len(deny_modals(w)) == 1
    assert w.audit_names(rid) == ["requested", "approved", "issued"] and state_of(w, rid) == "active"


# ---- cancel -------------------------------------------------------------------------------------------


def test_cancel_by_button_on_the_confirmation_in_the_form_dm_and_by_command(w: World):
    status, body = w.client.slash(REQUESTER, "payments-read 10m INC-9 cancel me")
    rid = body["text"].split("`")[1]
    assert "[Cancel request]" in render_blocks(body["blocks"]) and f"/elevate cancel {rid}" in body["text"]
    message = approval_message(w, rid)
    w.client.click(OUTSIDER, "cancel", rid)
    assert "Only the requester can cancel" in reply_to_last(w)["text"]
    w.client.click(REQUESTER, "cancel", rid)
    assert "Cancelled by the requester" in reply_to_last(w)["text"]
    assert w.audit_names(rid) == ["requested", "rejected", "cancelled"]
    assert rejected(w, rid) == [(OUTSIDER, "not_the_requester", "cancel")]
    w.slack.wait_for(lambda: "Cancelled" in shown(current(w, message)) and thread(w, message))
    assert "[Approve]" not in shown(current(w, message)) and len(thread(w, message)) == 1

    scope = {"type": "static_select", "selected_option": {"value": "payments-read"}}
    values = {"scope": {"value": scope}, "duration": {"value": "10m"}, "reason": {"value": "INC-10 by the form"}}
    status, _ = w.client.submit_view(REQUESTER, "request_modal", values)
    assert status == 200
    receipt = dm_with(w, REQUESTER, "Request `JIT-", "[Cancel request]")
    rid2 = shown(receipt).split("`")[1]
    w.client.click(REQUESTER, "cancel", rid2)
    w.slack.wait_for(lambda: "Cancelled by the requester" in shown(current(w, receipt)))
    assert "[Cancel request]" not in shown(current(w, receipt)) and state_of(w, rid2) == "cancelled"

    rid3 = ask(w, "payments-read 10m INC-12 by command")
    w.client.slash(REQUESTER, f"cancel {rid3}")
    assert f"{rid3}: :heavy_multiplication_x: Cancelled" in reply_to_last(w)["text"]
    w.client.slash(REQUESTER, f"cancel {rid3}")
    assert "only pending requests can be cancelled" in reply_to_last(w)["text"]
    assert state_of(w, rid3) == "cancelled"


# ---- App Home -----------------------------------------------------------------------------------------


def test_home_tab_for_requester_approver_and_auditor(w: World):
    for user in (REQUESTER, APPROVER, AUDITOR):
        open_home(w, user)
    open_home(w, APPROVER_2, tab="messages")
    wait_home(w, REQUESTER, "Your active grants", "Type `/elevate` to ask")
    assert "Audit trail" in wait_home(w, AUDITOR, "jitbot audit export") and "Audit trail" not in home_of(w, REQUESTER)

    rid = ask(w, "payments-read 10m INC-13 home")
    wait_home(w, REQUESTER, rid, "[Cancel request]", "0 of 1 approval(s)")
    mine = wait_home(w, APPROVER, "*Waiting on you* (1)", rid, "INC-13 home", "[Approve] [Deny]")
    assert "<@U0DEV0001> asks for `payments-read` for 10m" in mine
    w.bot.runtime.drain()
    assert home_of(w, APPROVER_2) == "", "no Home is published for people who never opened it"

    click_home(w, APPROVER, "approve", rid)
    w.wait_audit(rid, "issued")
    wait_home(w, REQUESTER, rid, "*10m left*", "[I'm done]", absent=("[Cancel request]",))
    wait_home(w, APPROVER, absent=(rid, "Waiting on you"))

    rid2 = ask(w, "db-admin-staging 10m staging fix")
    wait_home(w, APPROVER, rid2)
    click_home(w, APPROVER, "deny", rid2)  # the same listener as the message's button: the reason form
    w.slack.wait_for(lambda: deny_modals(w, APPROVER))
    w.client.submit_view(APPROVER, "deny_modal", {"reason": {"value": "not today"}})
    dm_with(w, REQUESTER, rid2, "Reason: not today")
    wait_home(w, REQUESTER, rid, absent=(rid2,))

    click_home(w, REQUESTER, "done", rid)  # I'm done: the grant ends now
    w.wait_audit(rid, "revoked")
    dm_with(w, REQUESTER, rid, "was revoked by you")
    wait_home(w, REQUESTER, "None. Access you are granted", absent=(rid,))


def test_refused_home_clicks_are_told_by_dm_audited_and_refresh_the_home(w: World):
    rid = ask(w, "payments-read 10m INC-14 stale home")
    open_home(w, APPROVER_2)
    wait_home(w, APPROVER_2, rid)
    stale = w.slack.views["VHOME" + APPROVER_2]["view"]
    w.client.click(APPROVER, "approve", rid)
    w.wait_audit(rid, "issued")
    wait_home(w, APPROVER_2, absent=(rid,))
    click_home(w, APPROVER_2, "approve", rid, view=stale)  # a screen that has not caught up yet
    dm_with(w, APPROVER_2, rid, "already decided")

    open_home(w, OUTSIDER)
    wait_home(w, OUTSIDER, "Your active grants")
    forged = {
        "id": "VHOME" + OUTSIDER,
        "type": "home",
        "blocks": [{"type": "actions", "elements": [button("I'm done", "done", rid)]}],
    }
    click_home(w, OUTSIDER, "done", rid, view=forged)  # the button was never theirs
    dm_with(w, OUTSIDER, rid, "Only the requester, an approver")
    assert rejected(w, rid) == [(OUTSIDER, "not_allowed_to_revoke", "revoke")] and state_of(w, rid) == "active"

    def published_to() -> list[str]:
        return [c["user_id"] for c in w.slack.calls_to("views.publish")]

    w.slack.wait_for(lambda: published_to().count(OUTSIDER) == 2, message="opening the Home, then refreshing it after the click")
    assert APPROVER not in published_to(), "approvers who never opened the Home get no views.publish"


def test_home_view_lists_at_most_twenty_waiting_requests():
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)

    def req(n: int, **fields: Any) -> Request:
        base = dict(
            id=f"JIT-{n:08d}",
            scope="payments-read",
            requester=REQUESTER,
            duration=timedelta(minutes=30),
            reason="INC-1",
            state=State.PENDING,
            created_at=now,
            pending_until=now + timedelta(hours=1),
        )
        return Request(**{**base, **fields})

    grant = req(
        1, state=State.ACTIVE, grant=Grant(CredentialHandle("vault_token", "a"), now, now + timedelta(minutes=29, seconds=40))
    )
    view = home.home_view([grant, req(2)], [req(n) for n in range(10, 35)], False, now, "/elevate")
    text = render_blocks(view["blocks"])
    assert (
        len(view["blocks"]) <= 100
        and len({b["block_id"] for b in view["blocks"] if b.get("block_id", "").startswith("decide:")}) == 20
    )
    assert "*30m left*" in text and "*Waiting on you* (25)" in text and "…and 5 more: `/elevate list`" in text
    assert "Audit trail" not in text


# ---- threads ------------------------------------------------------------------------------------------


def test_each_change_is_one_line_in_the_approval_thread(w: World):
    rid = ask(w, "db-admin-staging 2s staging migration")
    message = approval_message(w, rid)
    w.client.click(APPROVER, "approve", rid)
    w.wait_audit(rid, "expired", timeout=10)
    runtime = w.bot.runtime
    assert runtime is not None
    runtime.drain()
    lines = thread(w, message)
    starts = (":large_green_circle: Active", ":lock: Expired")
    assert len(lines) == 2 and all(line.startswith(f"{rid}: {start}") for line, start in zip(lines, starts, strict=True)), lines
    assert "approved by <@U0APPR001>" in lines[0]
    updates = len(current(w, message)["history"])
    runtime.notifier.request_changed(runtime.service.get(rid))  # a re-render of the same state
    runtime.drain()
    assert len(current(w, message)["history"]) == updates + 1 and thread(w, message) == lines
    assert all(m.get("thread_ts") in (None, message["ts"]) for m in w.slack.messages_in(message["channel"]))
