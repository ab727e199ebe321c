"""Our Web API calls keep to Slack's rate limits without ever sleeping: a call over its budget is refused at once as
Slack's own 429 (with Retry-After), so the outbox puts its notice back with that not-before time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk.errors import SlackApiError

from bot.outbox_worker import classify
from bot.slack_pacing import PER_MINUTE, POST_BURST, PacedWebClient, Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now


def test_posts_to_one_channel_burst_then_go_one_per_second_while_other_channels_are_not_held_up():
    t = FakeTime()
    pacer = Pacer(t.clock)
    assert [pacer.take("chat.postMessage", "C0APPROVALS") for _ in range(POST_BURST)] == [0.0] * POST_BURST
    assert pacer.take("chat.postMessage", "C0APPROVALS") == pytest.approx(1.0)  # the next one in a second
    assert pacer.take("chat.postMessage", "C0APPROVALS") == pytest.approx(1.0)  # a refusal takes no token
    assert pacer.take("chat.postMessage", "D0SOMEONE") == 0.0  # a DM to someone else does not wait behind it
    t.now = 1.0
    assert pacer.take("chat.postMessage", "C0APPROVALS") == 0.0


def test_tiered_methods_share_one_budget_per_minute_and_unknown_methods_never_wait():
    t = FakeTime()
    pacer = Pacer(t.clock)
    limit = PER_MINUTE["chat.update"]
    taken = [pacer.take("chat.update", f"C{i % 2}") for i in range(limit)]  # limited per workspace, not per channel
    assert taken == [0.0] * limit and pacer.take("chat.update", "C3") == pytest.approx(60 / limit)
    assert pacer.take("auth.test") == 0.0


def test_the_paced_client_refuses_a_call_over_budget_at_once_as_a_429_the_outbox_retries_after(monkeypatch):
    t = FakeTime()
    client = PacedWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/", pacer=Pacer(t.clock))
    sent: list[str] = []
    monkeypatch.setattr("slack_sdk.WebClient.api_call", lambda self, method, **kw: sent.append(method) or {"ok": True})
    for _ in range(POST_BURST):
        client.chat_postMessage(channel="C0APPROVALS", text="x")
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel="C0APPROVALS", text="x")
    assert sent == ["chat.postMessage"] * POST_BURST and t.now == 0.0  # not sent, and nobody slept
    failure = classify(refused.value)
    assert failure.retryable and failure.code == "ratelimited" and failure.retry_after == timedelta(seconds=1)


def test_pacing_is_on_unless_turned_off_for_a_stand_in():
    from bot.settings import load_settings
    from bot.slack_pacing import PacedWebClient, Unpaced
    from bot.wiring import slack_client

    common = {"slack_bot_token": "xoxb-test", "slack_signing_secret": "s", "slack_api_url": "http://127.0.0.1:9/api/"}
    paced = slack_client(load_settings(**common))
    assert isinstance(paced, PacedWebClient) and not isinstance(paced.pacer, Unpaced)
    unpaced = slack_client(load_settings(**common, jitbot_slack_pacing=False))
    assert isinstance(unpaced, PacedWebClient)
    assert all(unpaced.pacer.take("chat.postMessage", "C1") == 0.0 for _ in range(50))  # no bucket ever empties
