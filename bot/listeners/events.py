"""Events: the App Home tab, published from current state whenever someone opens it."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot import tasks
from bot.context import BotContext
from bot.listeners import bind


def register(app: App, ctx: BotContext) -> None:
    app.event("app_home_opened")(bind(home_opened, ctx))


def home_opened(event: dict[str, Any], *, ctx: BotContext) -> None:
    if event.get("tab", "home") == "home":  # the Messages tab fires this event too
        ctx.later(tasks.home(event["user"]))  # published where the outbox runs, which keeps it fresh from then on
