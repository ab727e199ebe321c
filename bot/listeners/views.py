"""Modals: the request form (its submission and its scope search) and the deny reason."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot import blocks, messages, tasks
from bot.context import BotContext
from bot.gate import NEW_REQUEST
from bot.listeners import asking, bind
from bot.listeners.actions import REQUEST_ID
from bot.slack_limits import VIEW_ERROR, clip
from grants.domain import DomainError, NotFound, State
from grants.text import refused_character, require_plain_message


def register(app: App, ctx: BotContext) -> None:
    app.view(blocks.REQUEST_MODAL)(bind(submit_request, ctx))
    app.view(blocks.DENY_MODAL)(bind(submit_deny, ctx))
    app.options(blocks.SCOPE_SEARCH)(bind(search_scopes, ctx))


def search_scopes(ack: Ack, body: dict[str, Any], *, ctx: BotContext) -> None:
    """The request form's external_select (more than 100 requestable scopes): the scopes this person may
    request, filtered by what they typed. Only requestable scopes are offered; the service re-checks anyway."""
    user = body["user"]["id"]
    typed = str(body.get("value") or "")
    ack(options=blocks.scope_options(ctx.catalog, ctx.service.people.requestable_by(user), typed))


def submit_request(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext | None = None, *, ctx: BotContext
) -> None:
    """Checked from the catalog alone and closed; the request is made after the ack, from the inbox (`asking.run`),
    and its receipt comes by DM. What would be wrong under a field is answered in the ack instead."""
    user = body["user"]["id"]
    if context and context.get(NEW_REQUEST):
        ack()
        return
    task = asking.from_form(ctx, user, view)
    if task is not None:  # no inbox (a bare app in a test): made in this process's pool
        ack()
        ctx.later(task)
        return
    fields, values = asking.form_fields(view), (view.get("state") or {}).get("values") or {}
    try:
        # Refused before the ack: the use cases refuse again, auditing what they must (a pasted private key).
        if fields["public_key"]:
            ctx.service.register_ssh_key(user, fields["public_key"])
        if fields["csr"]:
            ctx.service.register_csr(user, fields["csr"])
        created = ctx.service.request(
            user, fields["scope"], fields["duration"], fields["reason"], defer_issue=True, start_text=fields["start"]
        )
    except DomainError as error:
        # The form stays open with the message under the field that is wrong.
        field = str(error.context.get("field", "scope"))
        if field not in values and field not in {block.get("block_id") for block in view.get("blocks") or []}:
            field = "scope"  # e.g. a key is needed but this form has no key field (it was registered meanwhile)
        ack(response_action="errors", errors={field: clip(messages.error_text(error, ctx.command), VIEW_ERROR)})
        return
    ack()  # not refused after all (a key was registered meanwhile): made now, issued after the form has closed
    if created.state is State.APPROVED:
        ctx.later(tasks.issue(created.id))
    text, shown = asking.receipt(ctx, created)
    ctx.notifier.dm(user, text, shown)


def submit_deny(ack: Ack, body: dict[str, Any], view: dict[str, Any], *, ctx: BotContext) -> None:
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
            raise NotFound("This form names no request.")
        ctx.service.deny(request_id, user, reason)
    except DomainError as error:
        ack(response_action="update", view=blocks.notice_modal("Not denied", messages.error_text(error, ctx.command)))
        return
    ack()
    # Also when only an extension was denied (the request itself did not change); published where the Home tabs are.
    ctx.later(tasks.home(user, refresh=True))
