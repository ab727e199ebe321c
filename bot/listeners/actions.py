"""Button clicks: Approve and Deny. Buttons carry only the request ID; the clicker is re-authorized."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot import blocks, messages
from bot.context import BotContext
from grants.domain import DomainError


def register(app: App, ctx: BotContext) -> None:
    @app.action(blocks.APPROVE)
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()  # acknowledge within Slack's 3 s; Vault is called after the ack
        decide(ctx, respond, body, approve=True)

    @app.action(blocks.DENY)
    def deny(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        decide(ctx, respond, body, approve=False)


def decide(ctx: BotContext, respond: Respond, body: dict[str, Any], approve: bool) -> None:
    user, request_id = body["user"]["id"], body["actions"][0]["value"]
    try:
        if approve:
            ctx.service.approve(request_id, user)
        else:
            ctx.service.deny(request_id, user)
    except DomainError as error:
        # Ephemeral to the clicker only; the shared message is re-rendered from state elsewhere.
        respond(text=messages.error_text(error, ctx.command), response_type="ephemeral", replace_original=False)
