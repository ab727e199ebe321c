"""Button clicks in messages and the Home tab: Approve, Deny (with a reason), Cancel, I'm done, Extend, Nudge, review."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot import blocks, messages, tasks
from bot.gate import RECORDED
from bot.listeners import bind
from bot.listeners.failures import SLACK_FAILURES, slack_error_code
from grants.domain import DomainError, NotFound, Request, split_decision

if TYPE_CHECKING:
    from bot.context import BotContext  # the context runs the listeners' deferred work: no import at run time

log = logging.getLogger(__name__)
# A request ID, optionally with the decision a button was shown for (`:r`, `:e2`) and a shorter grant chosen (`@15m`).
REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,32}(?::[a-z0-9]{1,8})?(?:@[0-9a-z]{1,12})?$")
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
    blocks.APPROVE_FOR: (lambda ctx: ctx.service.approve, False),  # approve for less: the select's option names it
    blocks.CANCEL: (lambda ctx: ctx.service.cancel, True),
    blocks.DONE: (lambda ctx: ctx.service.revoke, True),  # "I'm done": the requester ends their own grant
    blocks.EXTEND: (lambda ctx: ctx.service.extend, True),  # the scope's default extension; the service re-checks all
    blocks.NUDGE: (lambda ctx: ctx.service.nudge, False),
    blocks.REVIEW_ACK: (lambda ctx: lambda request_id, user: ctx.service.review(request_id, user, "acknowledged"), False),
    blocks.REVIEW_FLAG: (lambda ctx: lambda request_id, user: ctx.service.review(request_id, user, "flagged"), False),
}


def later(ack: Ack, body: dict[str, Any], context: BoltContext | None = None, *, ctx: BotContext) -> None:
    """Every click of DEFERRED: recorded in the inbox before this listener ran (see `deferred.work_of`), so it is
    only acknowledged here; a worker carries it out after the ack, and again after a crash if it did not finish."""
    ack()
    if not (context and context.get(RECORDED)):  # no inbox (a bare app in a test): carried out in this process's pool
        ctx.later(tasks.click(body))


def run_click(ctx: BotContext, body: dict[str, Any]) -> None:
    """A deferred click, from its body alone (it may run in another worker, from its inbox row)."""
    action = str(body["actions"][0]["action_id"])
    operation, replace = DEFERRED[action]
    respond = ctx.responder(body.get("response_url"))
    decides = action in (blocks.APPROVE, blocks.APPROVE_FOR)
    act(ctx, body, respond, approving(ctx, body, respond) if decides else operation(ctx), replace)


def approving(ctx: BotContext, body: dict[str, Any], respond: Respond) -> Operation:
    """Approve; where the approval needs a sign-in, the click approves nothing and the clicker alone gets a one-time
    link to the step-up page instead (the core refuses such an approval without the page's evidence anyway)."""

    def approve(choice: str, user: str) -> Request | None:
        decision, _, duration = choice.partition("@")  # `JIT-…:r@15m`: approve for less
        secret = ctx.service.offer_step_up(decision, user, duration or None)  # approve for less: refused before a link
        if secret is None:
            return ctx.service.approve(decision, user, duration_text=duration or None)
        url = f"{ctx.catalog.settings.web_url.rstrip('/')}/stepup/start?t={secret}"
        tell(ctx, body, respond, messages.step_up_text(decision.split(":")[0], url, str(ctx.catalog.settings.step_up.link_ttl)))
        return None

    return approve


def act(ctx: BotContext, body: dict[str, Any], respond: Respond, operation: Operation, replace: bool = False) -> None:
    """Run one click. Refusals go to the clicker only; `replace` turns the clicked message into the outcome."""
    action = body["actions"][0]
    user, request_id = body["user"]["id"], str(action.get("value") or (action.get("selected_option") or {}).get("value") or "")
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
    if not ctx.service.may_decide(decision, user):
        # The core refuses again and writes the `rejected` event (or says it is already decided):
        # the audit trail has one writer, and nobody who would be refused ever sees the form.
        ctx.service.deny(decision, user)
        return
    request_id, _ = split_decision(decision)
    request = ctx.service.get(request_id)
    try:
        client.views_open(trigger_id=body["trigger_id"], view=blocks.deny_modal(request, decision))
    except SLACK_FAILURES as error:
        # Acked already: without this the click would end in silence. Logged by code, never a body.
        code = slack_error_code(error)
        log.warning("views.open failed for the deny form of %s: %s", request_id, code)
        tell(ctx, body, respond, messages.deny_form_failed_text(code, request_id))
