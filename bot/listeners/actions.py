"""Button clicks in messages and the Home tab: Approve, Deny (with a reason), Cancel, I'm done, Extend, Nudge, review."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks, messages
from bot.context import BotContext
from grants import guards
from grants.domain import DomainError, NotAllowed, NotFound, Request, State

REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")
Operation = Callable[[str, str], Request | None]  # (request ID, clicking user) -> the request as it now is


def register(app: App, ctx: BotContext) -> None:
    @app.action(blocks.APPROVE)
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()  # acknowledge within Slack's 3 s; Vault is called after the ack
        ctx.later(act, ctx, body, respond, ctx.service.approve)

    @app.action(blocks.DENY)
    def deny(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        act(ctx, body, respond, lambda request_id, user: ask_deny_reason(ctx, client, body["trigger_id"], request_id, user))

    @app.action(blocks.CANCEL)
    def cancel(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        ctx.later(act, ctx, body, respond, ctx.service.cancel, True)

    @app.action(blocks.DONE)
    def done(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()  # "I'm done": the requester ends their own grant; Vault revokes after the ack
        ctx.later(act, ctx, body, respond, ctx.service.revoke, True)

    @app.action(blocks.EXTEND)
    def extend(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()  # the scope's default extension, within the catalog's caps; the service re-checks everything
        ctx.later(act, ctx, body, respond, ctx.service.extend, True)

    @app.action(blocks.NUDGE)
    def nudge(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        ctx.later(act, ctx, body, respond, ctx.service.nudge)

    @app.action(blocks.REVIEW_ACK)
    def acknowledge(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        ctx.later(act, ctx, body, respond, lambda request_id, user: ctx.service.review(request_id, user, "acknowledged"))

    @app.action(blocks.REVIEW_FLAG)
    def flag(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        ctx.later(act, ctx, body, respond, lambda request_id, user: ctx.service.review(request_id, user, "flagged"))


def act(ctx: BotContext, body: dict[str, Any], respond: Respond, operation: Operation, replace: bool = False) -> None:
    """Run one click. Refusals go to the clicker only; `replace` turns the clicked message into the outcome."""
    user, request_id = body["user"]["id"], str(body["actions"][0].get("value") or "")
    # A click in the Home tab comes without a response_url (so may a forged one): answer by DM then.
    in_home = (body.get("view") or {}).get("type") == "home" or not body.get("response_url")
    try:
        if not REQUEST_ID.match(request_id):  # our buttons carry a request ID; anything else was forged
            raise NotFound("That button names no request. `list` shows your requests and their IDs.")
        outcome = operation(request_id, user)
    except DomainError as error:
        text = messages.error_text(error, ctx.command)
        if in_home:
            ctx.notifier.dm(user, text)
        else:  # ephemeral to the clicker; the shared message is re-rendered from state elsewhere
            respond(text=text, response_type="ephemeral", replace_original=False)
        outcome = None
    if in_home:
        ctx.notifier.show_home(user)  # stale buttons go away even when nothing changed
    elif replace and outcome is not None:
        verb = body["actions"][0]["action_id"]
        text = (
            blocks.outcome_text(verb, outcome)
            if verb == blocks.EXTEND
            else f"{outcome.id} (`{outcome.scope}`): {blocks.status_line(outcome)}"
        )
        respond(text=text, blocks=blocks.note(text), replace_original=True)


def ask_deny_reason(ctx: BotContext, client: WebClient, trigger_id: str, request_id: str, user: str) -> None:
    """Open the reason form, but only for someone the service would let deny this request now."""
    request = ctx.service.get(request_id)
    if not may_deny(ctx, request, user):
        # The core refuses again and writes the `rejected` event (or says it is already decided):
        # the audit trail has one writer, and nobody who would be refused ever sees the form.
        ctx.service.deny(request_id, user)
        return
    client.views_open(trigger_id=trigger_id, view=blocks.deny_modal(request))


def may_deny(ctx: BotContext, request: Request, user: str) -> bool:
    """The service's own deny check, read-only: a pending request (or extension) and a permitted approver."""
    scope = ctx.catalog.scopes.get(request.scope)
    open_ = request.state is State.PENDING or (request.state is State.ACTIVE and request.extension_pending is not None)
    if scope is None or not open_:
        return False
    try:
        guards.require_can_decide(ctx.service.people, scope, request, user)
    except NotAllowed:
        return False
    return True
