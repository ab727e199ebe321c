"""Modal submissions: the request form and the deny reason."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot import blocks, messages
from bot.context import BotContext
from bot.listeners.actions import REQUEST_ID
from grants.domain import DomainError, NotFound
from grants.text import refused_character, require_plain_message


def register(app: App, ctx: BotContext) -> None:
    @app.view(blocks.REQUEST_MODAL)
    def submit_request(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user, values = body["user"]["id"], (view.get("state") or {}).get("values") or {}
        selected = values.get("scope", {}).get("value", {}).get("selected_option") or {}
        duration = (values.get("duration", {}).get("value", {}).get("value") or "").strip() or None
        reason = values.get("reason", {}).get("value", {}).get("value") or ""
        try:
            created = ctx.service.request(user, selected.get("value", ""), duration, reason)
        except DomainError as error:
            # The form stays open with the message under the field that is wrong.
            field = str(error.context.get("field", "scope"))
            ack(response_action="errors", errors={field: messages.error_text(error, ctx.command)[:2000]})
            return
        ack()
        text = messages.receipt_text(created, ctx.catalog.scopes[created.scope], ctx.service.people, ctx.command)
        ctx.notifier.dm(user, text, blocks.receipt(text, created))

    @app.view(blocks.DENY_MODAL)
    def submit_deny(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        # The request ID comes back from private_metadata and could be forged like any payload:
        # the service re-checks the submitter and audits a refusal, exactly as for a button.
        user, request_id = body["user"]["id"], str(view.get("private_metadata") or "")
        typed = view.get("state", {}).get("values", {}).get("reason", {}).get("value", {}).get("value") or ""
        unsafe = refused_character(str(typed))
        if unsafe is not None:  # the form stays open, the message under the reason
            ack(response_action="errors", errors={"reason": require_plain_message(unsafe, "the reason")})
            return
        reason = " ".join(str(typed).split())[:500]
        try:
            if not REQUEST_ID.match(request_id):  # the form carries our request ID; anything else was forged
                raise NotFound("This form names no request. `list` shows your requests and their IDs.")
            ctx.service.deny(request_id, user, reason)
        except DomainError as error:
            ack(response_action="update", view=blocks.notice_modal("Not denied", messages.error_text(error, ctx.command)))
            return
        ack()
        ctx.notifier.refresh_home(user)  # also when only an extension was denied: the request itself did not change
