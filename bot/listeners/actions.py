"""Button clicks in messages and the Home tab: Approve, Deny (with a reason), Cancel, I'm done, Extend, Nudge, review."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks, messages, tasks
from bot.context import BotContext
from bot.listeners import bind
from bot.listeners.failures import SLACK_FAILURES, slack_error_code
from grants import guards
from grants.domain import DomainError, NotAllowed, NotFound, Request, State, open_decision, split_decision

log = logging.getLogger(__name__)
# A request ID, optionally with the decision a button was shown for (`:r`, `:e2`).
REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,32}(?::[a-z0-9]{1,8})?$")
Operation = Callable[[str, str], Request | None]  # (request ID, clicking user) -> the request as it now is


def register(app: App, ctx: BotContext) -> None:
    app.action(blocks.DENY)(bind(deny, ctx))
    for action_id in DEFERRED:
        app.action(action_id)(bind(later, ctx))


def deny(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond, *, ctx: BotContext) -> None:
    ack()  # the reason form must open within 3 s of the click, so this one is not deferred
    act(ctx, body, respond, lambda request_id, user: ask_deny_reason(ctx, client, body, respond, request_id, user))


# The clicks carried out after their ack: what each does, and whether its outcome replaces the clicked message.
DEFERRED: dict[str, tuple[Callable[[BotContext], Operation], bool]] = {
    blocks.APPROVE: (lambda ctx: ctx.service.approve, False),
    blocks.CANCEL: (lambda ctx: ctx.service.cancel, True),
    blocks.DONE: (lambda ctx: ctx.service.revoke, True),  # "I'm done": the requester ends their own grant
    blocks.EXTEND: (lambda ctx: ctx.service.extend, True),  # the scope's default extension; the service re-checks all
    blocks.NUDGE: (lambda ctx: ctx.service.nudge, False),
    blocks.REVIEW_ACK: (lambda ctx: lambda request_id, user: ctx.service.review(request_id, user, "acknowledged"), False),
    blocks.REVIEW_FLAG: (lambda ctx: lambda request_id, user: ctx.service.review(request_id, user, "flagged"), False),
}


def later(ack: Ack, body: dict[str, Any], *, ctx: BotContext) -> None:
    """Every click of DEFERRED: acknowledged at once, carried out after the ack (here or in the worker process)."""
    ack()
    ctx.later(tasks.click(body))


def run_click(ctx: BotContext, body: dict[str, Any]) -> None:
    """A deferred click, from its body alone (it may have crossed to the worker process)."""
    operation, replace = DEFERRED[str(body["actions"][0]["action_id"])]
    act(ctx, body, ctx.responder(body.get("response_url")), operation(ctx), replace)


def act(ctx: BotContext, body: dict[str, Any], respond: Respond, operation: Operation, replace: bool = False) -> None:
    """Run one click. Refusals go to the clicker only; `replace` turns the clicked message into the outcome."""
    user, request_id = body["user"]["id"], str(body["actions"][0].get("value") or "")
    # A click in the Home tab comes without a response_url (so may a forged one): answer by DM then.
    in_home = (body.get("view") or {}).get("type") == "home" or not body.get("response_url")
    try:
        if not REQUEST_ID.match(request_id):  # our buttons carry a request ID; anything else was forged
            raise NotFound("That button names no request.")
        outcome = operation(request_id, user)
    except DomainError as error:
        tell(ctx, body, respond, messages.error_text(error, ctx.command))
        outcome = None
    except Exception:
        # Acked already, so Slack shows nothing: without a word here the click would vanish (database down, say).
        log.exception("a click could not be carried out", extra={"request": request_id})
        try:
            tell(ctx, body, respond, not_done_text(request_id, ctx.command))
        except Exception:
            log.exception("could not tell the clicker that their click was not carried out")
        return
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


def not_done_text(request_id: str, command: str) -> str:
    shown = f" on {request_id}" if REQUEST_ID.match(request_id) else ""
    return (
        f":warning: Your click{shown} could not be carried out: the bot could not reach its database or Vault just now. "
        f"If the request's message has not changed, nothing was done: please click again in a minute "
        f"(`{command} list` shows where your requests stand)."
    )


def tell(ctx: BotContext, body: dict[str, Any], respond: Respond, text: str) -> None:
    """A word to the clicker only: ephemeral in the message's place, or a DM for a click in the Home tab."""
    user = body["user"]["id"]
    # A click in the Home tab comes without a response_url (so may a forged one): answer by DM then.
    if (body.get("view") or {}).get("type") == "home" or not body.get("response_url"):
        ctx.notifier.dm(user, text)
    else:  # ephemeral to the clicker; the shared message is re-rendered from state elsewhere
        respond(text=text, response_type="ephemeral", replace_original=False)


def ask_deny_reason(ctx: BotContext, client: WebClient, body: dict[str, Any], respond: Respond, decision: str, user: str) -> None:
    """Open the reason form, but only for someone the service would let deny this request now, and only for the
    decision the button was shown for (the form carries it, so a stale form is refused like a stale button)."""
    request_id, shown_for = split_decision(decision)
    request = ctx.service.get(request_id)
    if not may_deny(ctx, request, user) or open_decision(request) not in (None, shown_for):
        # The core refuses again and writes the `rejected` event (or says it is already decided):
        # the audit trail has one writer, and nobody who would be refused ever sees the form.
        ctx.service.deny(decision, user)
        return
    try:
        client.views_open(trigger_id=body["trigger_id"], view=blocks.deny_modal(request, decision))
    except SLACK_FAILURES as error:
        # Acked already: without this the click would end in silence. Logged by code, never a body.
        code = slack_error_code(error)
        log.warning("views.open failed for the deny form of %s: %s", request_id, code)
        tell(ctx, body, respond, messages.deny_form_failed_text(code, request_id))


def may_deny(ctx: BotContext, request: Request, user: str) -> bool:
    """The service's own deny check, read-only: a pending request (or extension) and a permitted approver."""
    scope = ctx.catalog.scopes.get(request.scope)
    extension = request.state is State.ACTIVE and request.extension_pending is not None
    if scope is None or not (request.state is State.PENDING or extension):
        return False
    check = guards.require_can_decide_extension if extension else guards.require_can_decide
    try:
        check(ctx.service.people, scope, request, user)
    except NotAllowed:
        return False
    return True
