"""Our Web API calls keep to Slack's rate limits: a burst drains at the published pace instead of meeting 429s."""

from __future__ import annotations

from bot.slack_pacing import PER_MINUTE, POST_BURST, PacedWebClient, Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_posts_to_one_channel_burst_then_go_one_per_second_while_other_channels_are_not_held_up():
    t = FakeTime()
    pacer = Pacer(t.clock, t.sleep)
    waits = [pacer.wait("chat.postMessage", "C0APPROVALS") for _ in range(POST_BURST + 5)]
    assert waits[:POST_BURST] == [0.0] * POST_BURST  # a quiet bot answers at once
    assert t.now == 5.0  # then one message a second in that channel
    assert pacer.wait("chat.postMessage", "D0SOMEONE") == 0.0  # a DM to someone else does not wait behind it


def test_tiered_methods_share_one_budget_per_minute_and_unknown_methods_never_wait():
    t = FakeTime()
    pacer = Pacer(t.clock, t.sleep)
    limit = PER_MINUTE["chat.update"]
    for _ in range(limit):
        pacer.wait("chat.update", "C1")
        pacer.wait("chat.update", "C2")  # chat.update is limited per workspace, not per channel
    assert abs(t.now - 60.0) < 1e-6  # a minute's budget at once, then the next minute's at the tier's pace
    before = t.now
    assert pacer.wait("auth.test") == 0.0 and t.now == before


def test_the_paced_client_waits_before_each_call_it_makes(monkeypatch):
    t = FakeTime()
    client = PacedWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/", pacer=Pacer(t.clock, t.sleep))
    sent: list[str] = []
    monkeypatch.setattr("slack_sdk.WebClient.api_call", lambda self, method, **kw: sent.append(method) or {"ok": True})
    for _ in range(POST_BURST + 2):
        client.chat_postMessage(channel="C0APPROVALS", text="x")
    assert sent == ["chat.postMessage"] * (POST_BURST + 2) and t.now == 2.0


def test_pacing_is_on_unless_turned_off_for_a_stand_in():
    from bot.settings import load_settings
    from bot.slack_pacing import PacedWebClient, Unpaced
    from bot.wiring import slack_client

    common = {"slack_bot_token": "xoxb-test", "slack_signing_secret": "s", "slack_api_url": "http://127.0.0.1:9/api/"}
    paced = slack_client(load_settings(**common))
    assert isinstance(paced, PacedWebClient) and not isinstance(paced.pacer, Unpaced)
    unpaced = slack_client(load_settings(**common, jitbot_slack_pacing=False))
    assert isinstance(unpaced, PacedWebClient) and unpaced.pacer.wait("chat.postMessage", "C1") == 0.0
    assert all(unpaced.pacer.wait("chat.postMessage", "C1") == 0.0 for _ in range(50))  # no bucket ever empties
