"""Approval workflows end to end over signed HTTP: steps, break-glass and its review, extensions, warnings,
nudges, reminders and escalation, against real OpenBao on SQLite and PostgreSQL."""

from __future__ import annotations

import hvac
import pytest
from hvac.exceptions import Forbidden

from devkit.standin import message_text as shown
from tests.conftest import APPROVER, APPROVER_2, AUDITOR, REQUESTER, WRAP_TOKEN, World

LEAD, SEC, PLATFORM, ALERTS = "U0APPR003", "U0SEC0001", "U0APPR005", "C0ALERTS1"


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    return {
        'alert_channel = ""': f'alert_channel = "{ALERTS}"',
        'remind_after = "10m"': 'remind_after = "2s"',
        'escalate_after = "45m"': 'escalate_after = "3s"',
        "max_extensions = 3\n": 'max_extensions = 3\nwarn_before = "2s"\n',
    }


@pytest.fixture
def w(world: World) -> World:
    return world


def slash(w: World, user: str, text: str) -> dict:
    status, body = w.client.slash(user, text)
    assert status == 200, body
    return body


def reply(w: World) -> str:
    name = w.client.last_response_name
    return w.slack.wait_for(lambda: w.slack.responses_to(name))[-1]["text"]


def message_with(w: World, *parts: str) -> dict:
    return w.slack.wait_for(lambda: w.slack.find_message(lambda m: all(p in shown(m) for p in parts)))


def dm_with(w: World, user: str, *parts: str) -> dict:
    return w.slack.wait_for(lambda: next((m for m in w.slack.dm_messages(user) if all(p in shown(m) for p in parts)), None))


def events(w: World, rid: str) -> list[str]:
    return w.audit_names(rid)


def test_two_step_approval_with_escalation(w: World):
    body = slash(w, APPROVER, "payments-write 10m CHG-1 rotate webhook keys")
    rid = body["text"].split("`")[1]
    assert "in steps: payments lead (1) → security (1)" in body["text"] and f"<@{LEAD}>" in body["text"]
    first = message_with(w, rid, "[Approve]", "now waiting for *payments lead*")
    w.client.click(SEC, "approve", rid)
    assert "waits for step `payments lead`" in reply(w)
    w.client.click(LEAD, "approve", rid)
    message_with(w, rid, "[Approve]", "now waiting for *security*")
    done = w.slack.wait_for(
        lambda: (
            (m := next(m for m in w.slack.messages_in(first["channel"]) if m["ts"] == first["ts"]))
            and "Your step is done" in shown(m)
            and m
        )
    )
    assert "[Approve]" not in shown(done), "the finished step's approvers have nothing left to click"
    w.client.click(LEAD, "approve", rid)
    assert "one person approves at most one step" in reply(w)
    # Nobody from security decides in time: the platform group is offered the request (escalate_after 3 s).
    w.wait_audit(rid, "escalated", timeout=10)
    escalated = message_with(w, "escalated to you", rid)
    assert f"<@{PLATFORM}>" in shown(escalated)
    w.client.click(PLATFORM, "approve", rid)
    w.wrapping_token(APPROVER, rid)
    names = events(w, rid)
    assert names.count("approval_added") == 1 and names.count("approved") == 1 and names.count("issued") == 1
    assert [r for r in w.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'rejected'")]
    w.slack.wait_for(lambda: "Active" in shown(next(m for m in w.slack.messages_in(first["channel"]) if m["ts"] == first["ts"])))


def test_break_glass_is_loud_and_reviewed(w: World):
    assert "not available" in slash(w, REQUESTER, "break-glass payments-read 10m INC-1 fire")["text"]
    assert "capped at 30m" in slash(w, APPROVER, "break-glass payments-read 45m INC-1 fire")["text"]
    body = slash(w, APPROVER, "break-glass payments-read 10m INC-7 payments API down")
    rid = body["text"].split("Break-glass ")[1].split(":")[0]
    assert "yours until" in body["text"]
    token = w.unwrap(w.wrapping_token(APPROVER, rid))
    assert hvac.Client(url=w.vault_addr, token=token).auth.token.lookup_self()["data"]["meta"]["request_id"] == rid
    notice = message_with(w, "BREAK-GLASS", rid, "[Acknowledge] [Flag]")
    assert "break-glass, no approval" in shown(notice)
    w.slack.wait_for(lambda: any(rid in m["text"] for m in w.slack.messages_in(ALERTS)))
    assert rid in slash(w, AUDITOR, "reviews")["text"]
    w.client.click(APPROVER, "review_acknowledged", rid)
    assert "own request" in reply(w)
    w.client.click(APPROVER_2, "review_flagged", rid)
    w.wait_audit(rid, "review_flagged")
    dm_with(w, APPROVER, "FLAGGED", rid)
    w.slack.wait_for(lambda: any("FLAGGED" in m["text"] for m in w.slack.messages_in(ALERTS)))
    assert "No break-glass review is open" in slash(w, AUDITOR, "reviews")["text"]
    slash(w, APPROVER, f"extend {rid} 5m")
    assert "cannot be extended" in reply(w)
    assert events(w, rid)[:3] == ["requested", "approved", "issued"]


def test_self_service_extension_and_the_offer_on_a_second_request(w: World):
    body = slash(w, REQUESTER, "staging-read 1m")
    rid = body["text"].split("`")[1]
    assert "approved automatically" in body["text"]
    old = w.unwrap(w.wrapping_token(REQUESTER, rid))
    slash(w, REQUESTER, "staging-read 1m again")  # the offer needs the database: it follows the ack
    offer = w.slack.wait_for(lambda: w.slack.responses_to(w.client.last_response_name))[-1]
    assert f"extend {rid}" in offer["text"] and "[Extend]" in shown({"blocks": offer["blocks"]})
    slash(w, REQUESTER, f"extend {rid} 10m")
    assert "extended until" in reply(w)
    w.wait_audit(rid, "extended")
    new_dm = w.slack.wait_for(
        lambda: [m for m in w.slack.dm_messages(REQUESTER) if "unwrap" in m["text"] and rid in m["text"]][1:]
    )
    new = w.unwrap(WRAP_TOKEN.search(new_dm[0]["text"]).group(1))
    info = hvac.Client(url=w.vault_addr, token=new).auth.token.lookup_self()["data"]
    assert 600 < info["ttl"] <= 660
    with pytest.raises(Forbidden):
        hvac.Client(url=w.vault_addr, token=old).auth.token.lookup_self()
    approved = w.rows(f"SELECT actor, detail FROM audit_events WHERE request_id = '{rid}' AND event = 'approved'")
    assert approved[0][0] == "system" and "developers on staging" in approved[0][1]


def test_extension_that_needs_an_approver(w: World):
    body = slash(w, REQUESTER, "payments-read 10m INC-3 long replay")
    rid = body["text"].split("`")[1]
    w.client.click(APPROVER, "approve", rid)
    w.wait_audit(rid, "issued")
    slash(w, REQUESTER, f"extend {rid} 20m")
    assert "an approver decides" in reply(w)
    message_with(w, rid, "asks to extend by *20m*", "[Approve]")
    # The Approve click an approver made on the original request, sent again now (freshly signed, so the replay
    # cache does not stop it): it was shown for the request, not for this extension, and must not approve it.
    w.client.click(APPROVER_2, "approve", f"{rid}:r")
    assert "out of date" in reply(w)
    assert w.rows(f"SELECT actor FROM audit_events WHERE request_id = '{rid}' AND detail LIKE '%stale_decision%'") == [
        (APPROVER_2,)
    ]
    w.client.click(REQUESTER, "approve", rid)
    assert "own request" in reply(w)
    w.client.click(APPROVER_2, "approve", rid)
    w.wait_audit(rid, "extended")
    assert w.rows(f"SELECT duration_seconds, extensions FROM requests WHERE id = '{rid}'") == [(1800, 1)]
    slash(w, REQUESTER, f"extend {rid} 5m")
    assert "no room left" in reply(w)


def test_expiry_warning_offers_extend_and_im_done(w: World):
    body = slash(w, REQUESTER, "staging-read 6s")
    rid = body["text"].split("`")[1]
    token = w.unwrap(w.wrapping_token(REQUESTER, rid))
    warning = dm_with(w, REQUESTER, "ends at", rid, "[Extend] [I'm done]")
    w.client.click(REQUESTER, "done", rid, message_channel=warning["channel"], message_ts=warning["ts"])
    w.wait_audit(rid, "revoked")
    assert "expiry_warned" in events(w, rid)
    with pytest.raises(Forbidden):
        hvac.Client(url=w.vault_addr, token=token).auth.token.lookup_self()


def test_reminders_and_nudges(w: World):
    body = slash(w, REQUESTER, "payments-read 10m INC-4 please")
    rid = body["text"].split("`")[1]
    message_with(w, rid, "[Approve]")
    w.wait_audit(rid, "reminded", timeout=10)
    message_with(w, "reminder", rid, f"<@{APPROVER}>")
    slash(w, REQUESTER, f"nudge {rid}")
    assert "approvers were reminded" in reply(w)
    message_with(w, "nudges", rid)
    slash(w, REQUESTER, f"nudge {rid}")
    assert "nudge again after" in reply(w)
    slash(w, APPROVER, f"nudge {rid}")
    assert "Only the requester" in reply(w)
    assert events(w, rid).count("nudged") == 1
