"""Events: the App Home tab, published from current state whenever someone opens it."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.context import BotContext


def register(app: App, ctx: BotContext) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") == "home":  # the Messages tab fires this event too
            ctx.notifier.show_home(event["user"])
