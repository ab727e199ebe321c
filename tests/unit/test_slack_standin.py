"""The Slack Web API stand-in and the signed-request client, driven by the real slack_sdk and slack_bolt."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator, RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn, dm_channel_id, render_blocks

TOKEN = "xoxb-test-token"
SECRET = "test-signing-secret"
USERS = {"U0REQ001": "rita", "U0APPR001": "alice", "U0APPR002": "bob"}
BUTTONS = [
    {"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "<@U0REQ001> asks for *payments-read*"}},
    {
        "type": "actions",
        "block_id": "decide",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "r-1",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {"type": "button", "action_id": "deny", "value": "r-1", "text": {"type": "plain_text", "text": "Deny"}},
        ],
    },
]


@pytest.fixture(scope="module")
def server() -> Iterator[SlackStandIn]:
    with SlackStandIn(TOKEN, USERS, {"S0ONCALL": ["U0APPR001", "U0APPR002"]}) as standin:
        yield standin


@pytest.fixture
def standin(server: SlackStandIn) -> SlackStandIn:
    server.reset()
    return server


@pytest.fixture
def client(standin: SlackStandIn) -> WebClient:
    return WebClient(token=TOKEN, base_url=standin.url, retry_handlers=[])


def test_url_is_the_api_base_with_its_trailing_slash(standin: SlackStandIn) -> None:
    assert standin.url.startswith("http://127.0.0.1:")
    assert standin.url.endswith("/api/")


def test_auth_test_names_the_bot(client: WebClient, standin: SlackStandIn) -> None:
    response = client.auth_test()
    assert (response["team_id"], response["user_id"], response["bot_id"]) == ("T0JITBOT", "U0JITBOT", "B0JITBOT")
    assert standin.calls == [("auth.test", {})]


def test_wrong_or_missing_token_is_refused(standin: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-wrong", base_url=standin.url).auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    assert wrong.value.response.status_code == 200
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=standin.url).chat_postMessage(channel="C1", text="x")
    assert missing.value.response["error"] == "not_authed"
    assert standin.messages == {}


def test_post_and_update_keep_history_and_render_buttons(client: WebClient, standin: SlackStandIn) -> None:
    first = client.chat_postMessage(channel="C0APPROVALS", text="fallback", blocks=BUTTONS)
    second = client.chat_postMessage(channel="C0APPROVALS", text="reply", thread_ts=first["ts"])
    assert first["channel"] == "C0APPROVALS"
    assert float(second["ts"]) > float(first["ts"])

    client.chat_update(channel="C0APPROVALS", ts=first["ts"], text="Approved by <@U0APPR001>", blocks=[])
    [message, reply] = standin.messages_in("C0APPROVALS")
    assert message["text"] == "Approved by <@U0APPR001>"
    assert message["history"][0]["blocks"] == BUTTONS
    assert reply["thread_ts"] == first["ts"]
    assert render_blocks(BUTTONS).splitlines() == ["<@U0REQ001> asks for *payments-read*", "[Approve] [Deny]"]

    with pytest.raises(SlackApiError) as unknown:
        client.chat_update(channel="C0APPROVALS", ts="1.000000", text="x")
    assert unknown.value.response["error"] == "message_not_found"
    assert standin.transcript() == [
        "[#C0APPROVALS] @U0REQ001 asks for *payments-read*\n    [Approve] [Deny]",
        "[#C0APPROVALS] (thread reply) reply",
        "[#C0APPROVALS] (updated) Approved by @U0APPR001",
    ]


def test_conversations_open_gives_deterministic_dm_channels(client: WebClient, standin: SlackStandIn) -> None:
    dm = client.conversations_open(users="U0REQ001")["channel"]["id"]
    group = client.conversations_open(users=["U0APPR002", "U0APPR001"])["channel"]["id"]
    assert dm.startswith("D") and dm == dm_channel_id("U0REQ001")
    assert group.startswith("G") and group == client.conversations_open(users="U0APPR001,U0APPR002")["channel"]["id"]

    client.chat_postMessage(channel=dm, text="your request r-1 was approved")
    client.chat_postMessage(channel="U0REQ001", text="posting to a user ID lands in the same DM")
    client.chat_postMessage(channel=group, text="please decide r-1")
    first, second = standin.dm_messages("U0REQ001")
    assert (first["text"], second["channel"]) == ("your request r-1 was approved", dm)
    assert standin.transcript(for_user="U0APPR001") == ["[group DM @U0APPR001 @U0APPR002] please decide r-1"]
    with pytest.raises(SlackApiError) as stranger:
        client.conversations_open(users="U0NOBODY")
    assert stranger.value.response["error"] == "user_not_found"


def test_views_open_update_and_publish_are_stored(client: WebClient, standin: SlackStandIn) -> None:
    modal = {"type": "modal", "callback_id": "request", "title": {"type": "plain_text", "text": "Request access"}, "blocks": []}
    opened = client.views_open(trigger_id=standin.trigger_id("U0REQ001"), view=modal)["view"]
    client.views_update(view_id=opened["id"], hash=opened["hash"], view={**modal, "private_metadata": "x"})
    client.views_publish(user_id="U0APPR001", view={"type": "home", "blocks": []})

    views = standin.views
    assert views[opened["id"]]["user"] == "U0REQ001"
    assert views[opened["id"]]["view"]["private_metadata"] == "x"
    assert len(views[opened["id"]]["history"]) == 1
    assert {v["kind"] for v in views.values()} == {"modal", "home"}
    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)
    assert stale.value.response["error"] == "hash_conflict"


def test_users_and_usergroups(client: WebClient) -> None:
    assert client.users_info(user="U0APPR001")["user"]["profile"]["display_name"] == "alice"
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U0APPR001", "U0APPR002"]
    with pytest.raises(SlackApiError):
        client.users_info(user="U0NOBODY")


def test_files_upload_v2_round_trips_bytes(client: WebClient, standin: SlackStandIn) -> None:
    content = b"seq,event\n1,requested\n" + bytes(range(256))
    response = client.files_upload_v2(
        channel="U0REQ001", content=content, filename="audit.csv", title="Audit export", initial_comment="Your export"
    )
    [stored] = standin.files.values()
    assert response["file"]["id"] == stored["id"]
    assert stored["content"] == content
    assert (stored["name"], stored["title"], stored["initial_comment"]) == ("audit.csv", "Audit export", "Your export")
    assert stored["channel"] == dm_channel_id("U0REQ001")
    assert standin.dm_messages("U0REQ001")[0]["files"][0]["id"] == stored["id"]
    assert '(uploaded "Audit export" audit.csv' in standin.transcript()[0]


def test_rate_limit_is_retried_after_retry_after(standin: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("slack_sdk.http_retry.builtin_handlers.time.sleep", slept.append)
    standin.rate_limit_next("chat.postMessage", retry_after=3)
    retrying = WebClient(token=TOKEN, base_url=standin.url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    assert retrying.chat_postMessage(channel="C1", text="hello")["ok"]
    assert len(slept) == 1 and slept[0] >= 3
    assert [m for m, _ in standin.calls] == ["chat.postMessage", "chat.postMessage"]
    assert len(standin.messages_in("C1")) == 1

    standin.rate_limit_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        WebClient(token=TOKEN, base_url=standin.url, retry_handlers=[]).chat_postMessage(channel="C1", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert limited.value.response.headers["Retry-After"] == "7"


def test_server_errors_are_retried_and_outages_heal(standin: SlackStandIn) -> None:
    handler = ServerErrorRetryHandler(max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01))
    retrying = WebClient(token=TOKEN, base_url=standin.url, retry_handlers=[handler])
    standin.fail_next("chat.postMessage", status=500, count=2)
    assert retrying.chat_postMessage(channel="C1", text="third time lucky")["ok"]
    assert len(standin.calls_to("chat.postMessage")) == 3

    plain = WebClient(token=TOKEN, base_url=standin.url, retry_handlers=[])
    standin.fail_all(None, status=503)
    with pytest.raises(SlackApiError) as down:
        plain.auth_test()
    assert down.value.response.status_code == 503
    standin.heal()
    assert plain.auth_test()["ok"]


def test_upload_endpoint_faults_fail_the_upload(client: WebClient, standin: SlackStandIn) -> None:
    standin.fail_next("upload", status=500)
    with pytest.raises(Exception, match="500"):
        client.files_upload_v2(channel="C1", content=b"x", filename="a.csv")
    assert standin.messages_in("C1") == []


def test_wait_for_returns_the_first_truthy_value_or_fails_readably(client: WebClient, standin: SlackStandIn) -> None:
    threading.Timer(0.05, lambda: client.chat_postMessage(channel="C1", text="late")).start()
    assert standin.wait_for(lambda: standin.messages_in("C1"), timeout=2)[0]["text"] == "late"

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"(?s)timed out after 0.2s: approval DM.*\[#C1\] late.*chat.postMessage"):
        standin.wait_for(lambda: standin.dm_messages("U0APPR001"), timeout=0.2, message="approval DM")
    assert time.monotonic() - started < 1


class _Capture(BaseHTTPRequestHandler):
    seen: list[tuple[bytes, dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((body, dict(self.headers.items())))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"received": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[str]:
    _Capture.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_signed_requests_verify_and_tampered_or_stale_ones_do_not(capture: str, standin: SlackStandIn) -> None:
    signed = SignedSlackClient(capture, SECRET, standin=standin)
    verifier = SignatureVerifier(SECRET)

    assert signed.slash("U0REQ001", "payments-read 30m INC-1 replay") == (200, {"received": True})
    body, headers = _Capture.seen[-1]
    assert verifier.is_valid_request(body, headers)
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    assert (form["command"], form["text"], form["user_id"], form["user_name"]) == (
        "/elevate",
        "payments-read 30m INC-1 replay",
        "U0REQ001",
        "rita",
    )
    assert form["response_url"] == signed.last_response_url and form["response_url"].startswith(standin.root)

    assert not verifier.is_valid_request(body.replace(b"30m", b"9d"), headers)
    status, _ = signed.raw(body.replace(b"30m", b"9d"), headers)
    assert status == 200 and not verifier.is_valid_request(*_Capture.seen[-1])

    signed.slash("U0REQ001", "list", timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(*_Capture.seen[-1])


def test_click_carries_the_real_message_and_its_block_ids(capture: str, client: WebClient, standin: SlackStandIn) -> None:
    posted = client.chat_postMessage(channel="C0APPROVALS", text="r-1", blocks=BUTTONS)
    signed = SignedSlackClient(capture, SECRET, standin=standin)
    signed.click("U0APPR001", "approve", "r-1")
    body, headers = _Capture.seen[-1]
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0APPR001"
    assert payload["actions"][0] | {"action_ts": None} == {
        "action_id": "approve",
        "block_id": "decide",
        "value": "r-1",
        "type": "button",
        "style": "primary",
        "text": {"type": "plain_text", "text": "Approve"},
        "action_ts": None,
    }
    assert payload["container"]["message_ts"] == posted["ts"] == payload["message"]["ts"]
    assert payload["channel"]["id"] == "C0APPROVALS"
    assert payload["message"]["blocks"] == BUTTONS


@pytest.fixture
def bolt_app(standin: SlackStandIn) -> Iterator[tuple[str, App]]:
    app = App(token=TOKEN, signing_secret=SECRET, client=WebClient(token=TOKEN, base_url=standin.url))

    class Events(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            response = app.dispatch(BoltRequest(body=body, headers={k.lower(): [v] for k, v in self.headers.items()}))
            self.send_response(response.status)
            for name, values in response.headers.items():
                for value in values:
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Events)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", app
    httpd.shutdown()
    httpd.server_close()


def test_a_real_bolt_app_round_trip(bolt_app: tuple[str, App], standin: SlackStandIn) -> None:
    url, app = bolt_app

    @app.command("/elevate")
    def on_command(ack: Any, respond: Any, client: WebClient, command: dict[str, str]) -> None:
        ack()
        respond(f"Request r-1 created: {command['text']}")
        client.chat_postMessage(channel="U0APPR001", text="r-1", blocks=BUTTONS)

    @app.action("approve")
    def on_approve(ack: Any, respond: Any, body: dict[str, Any], client: WebClient) -> None:
        ack()
        respond(replace_original=True, text=f"Approved by <@{body['user']['id']}>")
        client.chat_postMessage(channel="U0REQ001", text="r-1 approved")

    @app.view("request")
    def on_submit(ack: Any, view: dict[str, Any]) -> None:
        reason = view["state"]["values"]["reason"]["input"]["value"]
        ack(response_action="errors", errors={"reason": f"too short: {reason}"})

    signed = SignedSlackClient(url, SECRET, standin=standin)
    assert signed.slash("U0REQ001", "payments-read 30m INC-1")[0] == 200
    standin.wait_for(lambda: standin.dm_messages("U0APPR001"), timeout=3)
    assert standin.wait_for(lambda: standin.ephemerals_for("U0REQ001"), timeout=3)[0]["text"].startswith("Request r-1")

    assert signed.click("U0APPR001", "approve", "r-1")[0] == 200
    standin.wait_for(lambda: standin.dm_messages("U0REQ001"), timeout=3)
    [approval] = standin.dm_messages("U0APPR001")
    assert approval["text"] == "Approved by <@U0APPR001>" and approval["history"][0]["blocks"] == BUTTONS

    status, body = signed.submit_view("U0REQ001", "request", {"reason": {"input": "x"}})
    assert (status, body) == (200, {"response_action": "errors", "errors": {"reason": "too short: x"}})

    stale = signed.sign("command=%2Felevate", timestamp=int(time.time()) - 600)
    assert signed.raw("command=%2Felevate", stale)[0] == 401
    assert signed.raw("command=%2Felevate&text=x", signed.sign("command=%2Felevate"))[0] == 401
