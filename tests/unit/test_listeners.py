"""Listeners called directly, as Bolt would, with a fake ack, respond and Web API client: no network at all."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot import blocks
from bot.context import BotContext
from bot.listeners import actions, commands, events, views
from grants.catalog import parse_catalog
from grants.domain import State
from grants.service import ElevationService
from tests.catalogs import APPROVER_1, OUTSIDER, REQUESTER, catalog_data, make_catalog
from tests.fakes import FakeClock, FakeIssuer, FakeNotifier, FakeStore, FakeTimer, InlineWork
from tests.slack_payloads import check_options_response, check_view, raw_angle_brackets


class Recorder:
    """Stands in for Bolt's `ack` and `respond`: remembers what each was called with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, text: str = "", **fields: Any) -> None:
        self.calls.append({"text": text, **fields} if text else fields)


class FakeSlackNotifier:
    """What the listeners ask of the SlackNotifier: DMs and Home tabs, recorded."""

    def __init__(self) -> None:
        self.dms: list[tuple[str, str]] = []
        self.homes: list[str] = []

    def dm(self, user: str, text: str, blocks_: list[dict[str, Any]] | None = None) -> str:
        self.dms.append((user, text))
        return "D0" + user

    def show_home(self, user: str) -> None:
        self.homes.append(user)

    def refresh_home(self, *users: str) -> None:
        self.homes += users


class FakeWebClient:
    """views.open succeeds and records the view, or fails as real Slack does with `error`."""

    def __init__(self, error: str | None = None) -> None:
        self.error, self.opened = error, []

    def views_open(self, trigger_id: str, view: dict[str, Any]) -> SlackResponse:
        if self.error:
            response = SlackResponse(
                client=self,
                http_verb="POST",
                api_url="views.open",
                req_args={},
                data={"ok": False, "error": self.error},
                headers={},
                status_code=200,
            )
            raise SlackApiError(f"The request to the Slack API failed. {self.error}", response)
        self.opened.append(view)
        return SlackResponse(
            client=self, http_verb="POST", api_url="views.open", req_args={}, data={"ok": True}, headers={}, status_code=200
        )


def context() -> BotContext:
    clock = FakeClock()
    service = ElevationService(make_catalog(), FakeStore(), FakeIssuer(), FakeNotifier(), FakeTimer(clock), clock)
    return BotContext(service=service, catalog=service.catalog, notifier=FakeSlackNotifier(), work=InlineWork())  # type: ignore[arg-type]


def slash(ctx: BotContext, text: str, client: FakeWebClient | None = None) -> tuple[Recorder, Recorder]:
    ack, respond = Recorder(), Recorder()
    command = {"user_id": REQUESTER, "text": text, "trigger_id": "1.2.abc", "channel_id": "C0TEST"}
    commands.elevate(ack, command, client or FakeWebClient(), respond, ctx=ctx)  # type: ignore[arg-type]
    return ack, respond


def test_a_request_by_command_is_acked_with_the_receipt():
    ctx = context()
    ack, respond = slash(ctx, "payments-read 30m INC-1 replay refunds")
    (answer,) = ack.calls
    assert answer["response_type"] == "ephemeral" and "Request `JIT-" in answer["text"] and respond.calls == []
    assert [r.scope for r in ctx.service.mine(REQUESTER)] == ["payments-read"]


def test_an_unknown_word_is_escaped_and_lists_every_subcommand():
    ack, _ = slash(context(), "<!channel> now")
    text = ack.calls[0]["text"]
    assert "`&lt;!channel&gt;` is neither a subcommand" in text and not raw_angle_brackets(text)
    for word in ("list", "cancel", "revoke", "extend", "nudge", "break-glass", "reviews", "audit", "help"):
        assert word in text


def test_help_has_no_raw_placeholders():
    ack, _ = slash(context(), "help")
    text = ack.calls[0]["text"]
    assert "&lt;scope&gt;" in text and not raw_angle_brackets(text)


def test_the_bare_command_opens_the_form_after_the_ack():
    ctx, client = context(), FakeWebClient()
    ack, respond = slash(ctx, "", client)
    assert ack.calls == [{}] and respond.calls == []
    (view,) = client.opened
    check_view(view)
    assert [o["value"] for o in view["blocks"][0]["element"]["options"]] == ["payments-read", "payments-write"]


def test_a_form_slack_refuses_after_the_ack_is_explained_through_respond():
    ack, respond = slash(context(), "", FakeWebClient(error="expired_trigger_id"))
    assert ack.calls == [{}]
    (told,) = respond.calls
    assert told["response_type"] == "ephemeral" and "(`expired_trigger_id`" in told["text"]
    assert "`payments-read`" in told["text"] and not raw_angle_brackets(told["text"])


def click_body(user: str, action_id: str, request_id: str, in_home: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user": {"id": user},
        "trigger_id": "1.2.abc",
        "actions": [{"action_id": action_id, "value": request_id}],
    }
    # A click in a message comes with a response_url; one in the Home tab comes with the view instead.
    return {**body, "view": {"type": "home"}} if in_home else {**body, "response_url": "https://hooks.slack.invalid/1"}


def test_deny_opens_the_reason_form_for_an_approver_and_explains_when_slack_refuses_it():
    ctx = context()
    rid = ctx.service.request(REQUESTER, "payments-read", "30m", "INC-1").id
    client, ack, respond = FakeWebClient(), Recorder(), Recorder()
    actions.deny(ack, click_body(APPROVER_1, blocks.DENY, rid), client, respond, ctx=ctx)  # type: ignore[arg-type]
    assert ack.calls == [{}] and client.opened[0]["private_metadata"] == rid and respond.calls == []

    refusing = FakeWebClient(error="expired_trigger_id")
    actions.deny(Recorder(), click_body(APPROVER_1, blocks.DENY, rid), refusing, respond, ctx=ctx)  # type: ignore[arg-type]
    assert "Deny form" in respond.calls[0]["text"] and respond.calls[0]["replace_original"] is False
    actions.deny(Recorder(), click_body(APPROVER_1, blocks.DENY, rid, in_home=True), refusing, respond, ctx=ctx)  # type: ignore[arg-type]
    notifier = ctx.notifier
    assert isinstance(notifier, FakeSlackNotifier)
    assert notifier.dms and notifier.dms[0][0] == APPROVER_1 and "Deny form" in notifier.dms[0][1]
    assert notifier.homes == [APPROVER_1], "the Home tab is re-rendered after a click in it"
    assert ctx.service.get(rid).state.value == "pending"


def test_an_outsider_clicking_deny_never_sees_the_form():
    ctx = context()
    rid = ctx.service.request(REQUESTER, "payments-read", "30m", "INC-1").id
    client, respond = FakeWebClient(), Recorder()
    actions.deny(Recorder(), click_body(OUTSIDER, blocks.DENY, rid), client, respond, ctx=ctx)  # type: ignore[arg-type]
    assert client.opened == [] and "not an approver" in respond.calls[0]["text"]


def test_the_scope_search_serves_only_what_the_person_may_request():
    ctx, ack = context(), Recorder()
    views.search_scopes(ack, {"user": {"id": OUTSIDER}, "value": "payments"}, ctx=ctx)
    check_options_response(ack.calls[0])  # exactly what Bolt returns to Slack, by slack_sdk's Option model
    assert [o["value"] for o in ack.calls[0]["options"]] == ["payments-read"]  # payments-write names its requesters


def test_a_form_submission_with_a_bad_duration_keeps_the_form_open():
    ctx, ack = context(), Recorder()
    state = {"scope": {"value": {"selected_option": {"value": "payments-read"}}}, "duration": {"value": {"value": "forever"}}}
    views.submit_request(ack, {"user": {"id": REQUESTER}}, {"state": {"values": state}}, ctx=ctx)
    (answer,) = ack.calls
    assert answer["response_action"] == "errors" and list(answer["errors"]) == ["duration"]
    assert ctx.service.mine(REQUESTER) == []


def test_opening_the_home_tab_publishes_it_and_the_messages_tab_does_not():
    ctx = context()
    events.home_opened({"user": REQUESTER, "tab": "messages"}, ctx=ctx)
    events.home_opened({"user": REQUESTER, "tab": "home"}, ctx=ctx)
    notifier = ctx.notifier
    assert isinstance(notifier, FakeSlackNotifier) and notifier.homes == [REQUESTER]


def test_bolt_sees_the_listener_arguments_and_never_ctx():
    from slack_bolt.util.utils import get_arg_names_of_callable, get_name_for_callable

    from bot.listeners import bind

    bound = bind(commands.elevate, context())
    assert get_arg_names_of_callable(bound) == ["ack", "command", "client", "respond", "context"]
    assert get_name_for_callable(bound) == "elevate", "log lines name the listener"


class SlowVault(FakeIssuer):
    """Vault that answers only when the test lets it: proves who waits for whom."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.called = threading.Event()

    def issue(self, order, scope):  # type: ignore[no-untyped-def]
        self.called.set()
        assert self.release.wait(10), "the test never released Vault"
        return super().issue(order, scope)


def slow_context() -> tuple[BotContext, SlowVault, FakeStore]:
    clock, vault, store = FakeClock(), SlowVault(), FakeStore()
    data = catalog_data()
    data["groups"]["oncall"] = [REQUESTER]
    data["scopes"]["payments-read"]["break_glass"] = {"requesters": ["group:oncall"], "max_duration": "30m"}
    data["scopes"]["payments-read"]["auto_approve"] = [{"name": "me", "requesters": [REQUESTER], "max_duration": "10m"}]
    service = ElevationService(parse_catalog(data), store, vault, FakeNotifier(), FakeTimer(clock), clock)
    ctx = BotContext(service=service, catalog=service.catalog, notifier=FakeSlackNotifier())  # type: ignore[arg-type]
    return ctx, vault, store


@pytest.mark.parametrize("text", ["payments-read 5m INC-1 auto", "break-glass payments-read 5m INC-2 fire"])
def test_auto_approval_and_break_glass_answer_slack_before_vault_is_called(text: str):
    ctx, vault, store = slow_context()
    ack, _ = slash(ctx, text)  # returns although Vault has not answered: the ack never waits on it
    (answer,) = ack.calls
    assert "JIT-" in answer["text"] and ("approved automatically" in answer["text"] or "being issued" in answer["text"])
    assert vault.called.wait(5)  # issuing goes on after the ack, on the post-ack workers
    (request,) = store.requests.values()
    assert request.state is State.APPROVED
    vault.release.set()
    ctx.work.shutdown(wait=True)
    assert store.get(request.id).state is State.ACTIVE and len(vault.live) == 1
