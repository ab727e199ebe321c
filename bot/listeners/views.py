"""Modal submissions: the request form."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot import blocks, messages
from bot.context import BotContext
from grants.domain import InvalidRequest


def register(app: App, ctx: BotContext) -> None:
    @app.view(blocks.REQUEST_MODAL)
    def submit_request(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user, values = body["user"]["id"], view["state"]["values"]
        selected = values.get("scope", {}).get("value", {}).get("selected_option") or {}
        duration = (values.get("duration", {}).get("value", {}).get("value") or "").strip() or None
        reason = values.get("reason", {}).get("value", {}).get("value") or ""
        try:
            created = ctx.service.request(user, selected.get("value", ""), duration, reason)
        except InvalidRequest as error:
            # The form stays open with the message under the field that is wrong.
            field = str(error.context.get("field", "scope"))
            ack(response_action="errors", errors={field: str(error)})
            return
        ack()
        ctx.notifier.dm(
            user,
            f":outbox_tray: Request `{created.id}` for `{created.scope}` ({messages.format_duration(created.duration)}) "
            f"sent to its approvers. I'll DM you when it is decided.",
        )
