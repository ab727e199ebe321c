"""When Slack will not open a form after the ack (expired_trigger_id…), the person is told what to do instead, over HTTP."""

from __future__ import annotations

import logging

import pytest

from devkit.standin import message_text as shown
from tests.conftest import APPROVER, REQUESTER, World
from tests.e2e.test_slack_workflows import approval_message, ask, click_home, open_home, reply_to_last, wait_home


@pytest.fixture
def w(world: World) -> World:
    return world


def modals(w: World) -> list[str]:
    return [v["view"].get("callback_id", "") for v in w.slack.views.values() if v["kind"] == "modal"]


@pytest.mark.parametrize(
    "failure", [{"status": 200, "error": "expired_trigger_id"}, {"status": 200, "error": "invalid_arguments"}]
)
def test_a_request_form_slack_would_not_open_is_explained(w: World, failure: dict, caplog: pytest.LogCaptureFixture):
    w.slack.fail_next("views.open", **failure)
    with caplog.at_level(logging.WARNING):
        status, body = w.client.slash(REQUESTER, "")
        assert status == 200 and not body, (status, body)  # acked; Bolt does not answer 404 "unhandled request"
        reply = reply_to_last(w)
    assert reply["response_type"] == "ephemeral"
    text = reply["text"]
    assert f"Slack did not open the request form (`{failure['error']}`" in text
    assert "`/elevate &lt;scope&gt; &lt;duration&gt; &lt;reason…&gt;`" in text and "`payments-read`" in text
    assert modals(w) == [] and w.rows("SELECT count(*) FROM requests")[0][0] == 0
    logged = [r.getMessage() for r in caplog.records if "views.open failed" in r.getMessage()]
    assert logged == [f"views.open failed for the request form: {failure['error']}"]

    status, _ = w.client.slash(REQUESTER, "")  # the next try, within 3 s, opens it
    assert status == 200
    w.slack.wait_for(lambda: modals(w) == ["request_modal"])


def test_a_deny_form_slack_would_not_open_is_explained_in_the_message_and_in_the_home_tab(w: World):
    rid = ask(w, "payments-read 10m INC-12 the deny form fails")
    approval_message(w, rid)
    w.slack.fail_next("views.open", status=200, error="expired_trigger_id")
    status, _ = w.client.click(APPROVER, "deny", rid)
    assert status == 200
    reply = reply_to_last(w)
    assert reply["response_type"] == "ephemeral" and not reply["replace_original"]
    assert f"Slack did not open the Deny form for {rid} (`expired_trigger_id`" in reply["text"]
    assert "Nothing was decided: press Deny again." in reply["text"]

    open_home(w, APPROVER)
    wait_home(w, APPROVER, rid)
    w.slack.fail_next("views.open", status=200, error="trigger_exchanged")
    click_home(w, APPROVER, "deny", rid)  # no response_url in the Home tab: the explanation comes by DM
    dm = w.slack.wait_for(lambda: next((m for m in w.slack.dm_messages(APPROVER) if "Deny form" in shown(m)), None))
    assert "(`trigger_exchanged`" in shown(dm)
    assert w.audit_names(rid) == ["requested"] and modals(w) == []

    w.client.click(APPROVER, "deny", rid)
    w.slack.wait_for(lambda: modals(w) == ["deny_modal"])
