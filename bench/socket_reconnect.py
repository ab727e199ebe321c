"""Socket Mode: how long after a reconnect (`disconnect`, reason refresh_requested) the next envelope is acked,
for each of Bolt's synchronous Socket Mode adapters, against the Slack stand-in's WebSocket server.

`python -m bench.socket_reconnect [--rounds N]` prints, per adapter, the median and worst time from sending the first
envelope on the new connection to receiving its ack, and the same for envelopes on a settled connection."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bench.core import Figure, Lab
from devkit.standin import SlackStandIn

BOT_TOKEN, APP_TOKEN = "xoxb-bench-socket", "xapp-1-A0JITBOT-bench"
ADAPTERS = {
    "builtin (slack_bolt.adapter.socket_mode)": "slack_bolt.adapter.socket_mode.builtin",
    "websocket_client (slack_bolt.adapter.socket_mode.websocket_client)": "slack_bolt.adapter.socket_mode.websocket_client",
}
COMMAND = {
    "command": "/elevate",
    "text": "list",
    "user_id": "U0DEV0001",
    "team_id": "T0JITBOT",
    "channel_id": "C0GENERAL",
    "response_url": "http://127.0.0.1:9/respond/x",
    "trigger_id": "1.2.bench",
    "api_app_id": "A0JITBOT",
}


def ack_seconds(standin: SlackStandIn) -> float:
    sent = time.monotonic()
    ack = standin.wait_for_ack(standin.send_envelope("slash_commands", COMMAND), timeout=30)
    return ack.at - sent


def measure(module: str, rounds: int) -> tuple[list[float], list[float]]:
    handler_class: Any = __import__(module, fromlist=["SocketModeHandler"]).SocketModeHandler
    with SlackStandIn(BOT_TOKEN, app_token=APP_TOKEN) as standin:
        app = App(client=WebClient(token=BOT_TOKEN, base_url=standin.url), signing_secret="unused-in-socket-mode")

        @app.command("/elevate")
        def answer(ack: Ack) -> None:
            ack("ok")

        handler = handler_class(app, APP_TOKEN, web_client=app.client)
        handler.connect()
        try:
            standin.wait_for_connection(1)
            settled = [ack_seconds(standin) for _ in range(rounds)]
            after_reconnect = []
            for _ in range(rounds):
                next_connection = standin.socket_connections + 1
                standin.request_refresh()
                standin.wait_for_connection(next_connection, timeout=30)
                after_reconnect.append(ack_seconds(standin))
        finally:
            handler.close()
    return settled, after_reconnect


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.socket_reconnect", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    print(f"{'adapter':<70} {'settled p50':>12} {'after reconnect p50':>20} {'worst':>8}")
    for name, module in ADAPTERS.items():
        settled, after = measure(module, rounds)
        print(
            f"{name:<70} {statistics.median(settled) * 1000:>10.1f}ms {statistics.median(after) * 1000:>18.1f}ms "
            f"{max(after) * 1000:>6.0f}ms"
        )


if __name__ == "__main__":
    main()


def run(lab: Lab) -> list[Figure]:
    """For `python -m bench`: per adapter, the ack after a reconnect against the ack on a settled connection."""
    rounds = lab.size(5, 2)
    figures = []
    for name, module in ADAPTERS.items():
        settled, after = measure(module, rounds)
        figures.append(
            Figure("socket", f"Socket Mode ack after a reconnect, p50 ({name.split()[0]})", "ms",
                   statistics.median(after) * 1000, statistics.median(settled) * 1000,
                   "ack on a settled connection, p50", note=f"{rounds} rounds, worst {max(after) * 1000:.0f} ms")
        )  # fmt: skip
    return figures
