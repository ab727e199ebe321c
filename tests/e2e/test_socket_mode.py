"""The real `jitbot serve` in Socket Mode against the stand-in's WebSocket server: request, approve, credential DM,
request form, Home tab, and a reconnect when Slack asks for a refresh."""

from __future__ import annotations

import hvac
import pytest

from devkit.processes import ServeProcess
from devkit.slack_client import SocketModeSlackClient
from devkit.standin import SlackStandIn, message_text, render_blocks
from tests.conftest import APPROVER, REQUESTER, WRAP_TOKEN, process_env

APP_TOKEN = "xapp-1-A0JITBOT-socket-mode-test"
pytestmark = pytest.mark.slow


@pytest.fixture
def socket_bot(tmp_path, db_url, openbao, bot_vault_token):
    """The stand-in (Web API and Socket Mode) and `jitbot serve` connected to it by Socket Mode."""
    with process_env(tmp_path, openbao.addr, bot_vault_token, db_url=db_url, app_token=APP_TOKEN) as (slack, variables):
        bot = ServeProcess(variables, tmp_path / "serve.log").start()
        try:
            slack.wait_for_connection(1, timeout=15)
            yield slack, SocketModeSlackClient(slack), bot
        finally:
            bot.stop()
        assert APP_TOKEN not in (tmp_path / "serve.log").read_text(), "the app token leaked into the log"


def request(slack: SlackStandIn, client: SocketModeSlackClient, text: str) -> str:
    status, answer = client.slash(REQUESTER, text)
    assert status == 200 and "Request `JIT-" in answer["text"], answer
    rid = answer["text"].split("`")[1]
    slack.wait_for(lambda: slack.find_message(lambda m: rid in message_text(m) and "[Approve]" in message_text(m)))
    return str(rid)


def credential(slack: SlackStandIn, rid: str) -> str:
    dm = slack.wait_for(lambda: next((m for m in slack.dm_messages(REQUESTER) if rid in m["text"] and "```" in m["text"]), None))
    return str(WRAP_TOKEN.search(dm["text"]).group(1))


def home(slack: SlackStandIn, user: str, *words: str) -> str:
    def shown() -> str | None:
        view = slack.views.get("VHOME" + user)
        text = render_blocks(view["view"]["blocks"]) if view else ""
        return text if text and all(word in text for word in words) else None

    return str(slack.wait_for(shown, message=f"Home tab of {user} showing {words}"))


def test_request_approve_credential_and_home_over_socket_mode(socket_bot, openbao):
    slack, client, _bot = socket_bot
    assert slack.calls_to("apps.connections.open"), "the bot asked the configured Slack API for its WebSocket URL"
    rid = request(slack, client, "payments-read 10m INC-4411 socket mode")

    status, answer = client.click(APPROVER, "approve", rid)  # an interactive envelope; its ack carries no payload
    assert (status, answer) == (200, "")
    wrapping = credential(slack, rid)
    token = hvac.Client(url=openbao.addr, token=wrapping).sys.unwrap()["auth"]["client_token"]
    assert "payments-read" in hvac.Client(url=openbao.addr, token=token).auth.token.lookup_self()["data"]["policies"]
    approval = slack.find_message(lambda m: rid in message_text(m) and "approved by" in message_text(m))
    assert approval is not None and "[Approve]" not in message_text(approval)

    status, answer = client.open_home(REQUESTER)  # an events_api envelope
    assert (status, answer) == (200, "")
    assert "Your active grants" in home(slack, REQUESTER, rid, "[I'm done]")


def test_the_request_form_over_socket_mode(socket_bot):
    slack, client, _bot = socket_bot
    status, answer = client.slash(REQUESTER, "")
    assert status == 200
    slack.wait_for(lambda: any(v["view"].get("callback_id") == "request_modal" for v in slack.views.values()))
    scope = {"type": "static_select", "selected_option": {"value": "payments-read"}}
    form = {"scope": {"value": scope}, "duration": {"value": "9h"}, "reason": {"value": "INC-9 form"}}
    status, answer = client.submit_view(REQUESTER, "request_modal", form)  # the ack's payload is the form's answer
    assert status == 200 and answer["response_action"] == "errors" and "1m to 1h" in answer["errors"]["duration"]
    status, answer = client.submit_view(REQUESTER, "request_modal", {**form, "duration": {"value": "20m"}})
    assert status == 200 and answer in ("", {})
    slack.wait_for(lambda: any("Request `JIT-" in message_text(m) for m in slack.dm_messages(REQUESTER)))


def test_a_refresh_request_reconnects_and_the_next_envelope_is_answered_on_the_new_connection(socket_bot):
    slack, client, _bot = socket_bot
    urls_before = len(slack.calls_to("apps.connections.open"))
    refreshed = slack.request_refresh()
    # slack_sdk's websocket_client client may race itself while replacing its connection and then recovers on its
    # next health check (every ping_interval, 10 s): a bound, not a sleep.
    slack.wait_for_connection(refreshed + 1, timeout=30)
    assert len(slack.calls_to("apps.connections.open")) > urls_before, "a fresh WebSocket URL was asked for"

    client.timeout = 30  # an envelope lost with a connection is sent again on the next one, as Slack does
    status, answer = client.slash(REQUESTER, "list")
    assert client.last_ack is not None and client.last_ack.connection > refreshed, "acked over a new connection"
    assert status == 200 and answer["text"] == "You have no requests yet.", answer
    rid = request(slack, client, "payments-read 10m INC-5 after the refresh")
    client.click(APPROVER, "approve", rid)
    credential(slack, rid)


def test_an_event_slack_sends_again_over_the_socket_is_processed_once(socket_bot):
    """Slack re-sends an events_api envelope it thinks was missed (same event_id): the Home tab is published once."""
    slack, client, _bot = socket_bot
    body = {
        "token": "verification-token-unused", "team_id": client.team_id, "api_app_id": client.api_app_id,
        "event": {"type": "app_home_opened", "user": REQUESTER, "channel": slack.dm_channel_id(REQUESTER), "tab": "home",
                  "event_ts": "1.000001"},
        "type": "event_callback", "event_id": "Ev0SOCKETRETRY", "event_time": 1,
    }  # fmt: skip
    before = len(slack.calls_to("views.publish"))
    assert client._send_event(body)[0] == 200
    slack.wait_for(lambda: len(slack.calls_to("views.publish")) > before, message="the first copy publishes the Home tab")
    assert client._send_event(body)[0] == 200  # the retry is acked (Slack must stop re-sending) ...
    client.open_home(REQUESTER)  # ... and a fresh event afterwards shows the pipeline still runs
    slack.wait_for(lambda: len(slack.calls_to("views.publish")) >= before + 2, message="the fresh event publishes")
    assert len(slack.calls_to("views.publish")) == before + 2  # not +3: the retried copy did nothing
