"""The slash command: request, list, cancel, revoke, audit, help, and the request form when typed bare."""

from __future__ import annotations

import hashlib
import logging
import shlex
import tempfile
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot import blocks, messages, tasks
from bot.gate import NEW_REQUEST, RECORDED
from bot.listeners import asking, bind
from bot.listeners.failures import SLACK_FAILURES, slack_error_code
from grants.audit import AuditQuery, parse_time
from grants.domain import DomainError, ExtensionOffered, State
from grants.text import refused_character, require_plain_message

if TYPE_CHECKING:
    from bot.context import BotContext  # the context runs the listeners' deferred work: no import at run time

log = logging.getLogger(__name__)


def say(ack: Ack, text: str) -> None:
    """Acknowledge with an ephemeral reply that only the person who typed the command sees."""
    ack(text=text, response_type="ephemeral")


def register(app: App, ctx: BotContext) -> None:
    app.command(ctx.command)(bind(elevate, ctx))


SUBCOMMAND_LIST = "list, cancel, revoke, extend, nudge, break-glass, reviews, ssh-key, csr, audit, help"


def elevate(
    ack: Ack,
    command: dict[str, Any],
    client: WebClient,
    respond: Respond,
    context: BoltContext | None = None,
    *,
    ctx: BotContext,
) -> None:
    """`/elevate …`: one subcommand, a request, or the request form when typed bare."""
    user, text = command["user_id"], (command.get("text") or "").strip()
    unsafe = refused_character(text)
    if unsafe is not None:
        # Checked on the whole command before it is split: split() would silently eat some controls.
        say(ack, f":warning: {require_plain_message(unsafe)}")
        return
    words = text.split()
    verb = words[0].lower() if words else ""
    try:
        if not words:
            open_form(ack, ctx, client, respond, user, command)
        elif verb == "help":
            say(ack, messages.help_text(ctx.command, ctx.service.people.requestable_by(user)))
        elif verb == "list":
            say(ack, blocks.request_list(ctx.service.mine(user), ctx.service.waiting_on(user)))
        elif verb in ("revoke", "cancel", "extend", "nudge"):
            act_on(ack, ctx, user, verb, words[1:], command.get("response_url"), bool(context and context.get(RECORDED)))
        elif verb == "break-glass":
            break_glass(ack, ctx, user, words[1:])
        elif verb == "reviews":
            say(ack, blocks.review_list(ctx.service.open_reviews(user)))
        elif verb == "audit":
            audit(ack, ctx, user, text[len(words[0]) :], command.get("response_url"))
        elif verb == "ssh-key":
            ssh_key(ack, ctx, user, text[len(words[0]) :].strip())
        elif verb == "csr":
            csr(ack, ctx, user, text[len(words[0]) :].strip())
        elif verb in ctx.catalog.scopes:
            request(ack, ctx, user, words, command.get("response_url"), context.get(NEW_REQUEST) if context else None)
        else:
            scopes = ", ".join(f"`{s}`" for s in ctx.service.people.requestable_by(user)) or "none"
            problem = f"`{messages.esc(words[0])}` is neither a subcommand ({SUBCOMMAND_LIST}) nor a scope."
            say(ack, messages.usage_text(f"{problem} Scopes you can request: {scopes}.", ctx.command))
    except ExtensionOffered as offer:
        text = messages.error_text(offer, ctx.command)
        ack(text=text, blocks=blocks.extension_offer(text, str(offer.context["request_id"])), response_type="ephemeral")
    except DomainError as error:
        say(ack, messages.error_text(error, ctx.command))


def open_form(ack: Ack, ctx: BotContext, client: WebClient, respond: Respond, user: str, command: dict[str, Any]) -> None:
    scopes = ctx.service.people.requestable_by(user)
    if not scopes:
        say(ack, ":warning: There is no scope you can request. Ask an admin to add you to a scope's requesters.")
        return
    # Some kinds (ssh) certify a registered key: the form asks for one when the person could pick such a scope without.
    ask_key = any(ctx.catalog.scopes[s].needs_public_key for s in scopes) and ctx.service.ssh_key(user) is None
    ask_csr = any(ctx.catalog.scopes[s].needs_csr for s in scopes) and ctx.service.csr(user) is None
    ack()
    try:
        client.views_open(
            trigger_id=command["trigger_id"],
            view=blocks.request_modal(
                ctx.catalog, scopes, command.get("channel_id", ""), ask_public_key=ask_key, ask_csr=ask_csr
            ),
        )
    except SLACK_FAILURES as error:
        # Real Slack refuses a trigger older than 3 s (`expired_trigger_id`); the command was acked, so
        # the only way left to reach the person is the response URL. Logged by error code, never a body.
        code = slack_error_code(error)
        log.warning("views.open failed for the request form: %s", code)
        respond(text=messages.form_failed_text(code, ctx.command, scopes), response_type="ephemeral")


def request(
    ack: Ack, ctx: BotContext, user: str, words: list[str], response_url: str | None, recorded: str | None = None
) -> None:
    """Answered from the catalog alone: the request the ack names is made after it, from the inbox (`asking.run`)."""
    read = asking.read_words(words)
    if read is None:
        say(ack, messages.usage_text("Name the service after `for`.", ctx.command, "<scope> for <service> <duration> <reason…>"))
        return
    scope, service, duration, start, reason = read
    try:
        planned = ctx.service.plan(user, scope, duration, reason, service, request_id=recorded, start_text=start)
    except DomainError:
        # Refused before anything is stored: the use case refuses again, auditing what it must (`elevate` acks it).
        planned = ctx.service.request(user, scope, duration, reason, service, defer_issue=True, start_text=start)
        recorded = planned.id  # not refused after all (the catalog changed in between): made now, as it stands
        if planned.state is State.APPROVED:
            ctx.later(tasks.issue(planned.id))
    text, shown = asking.receipt(ctx, planned)
    ack(text=text, blocks=shown, response_type="ephemeral")
    if recorded is None:  # no inbox (a bare app in a test): made in this process's pool
        ctx.later(tasks.new_request(planned.id, user, scope, duration, reason, service, response_url, start=start))


def ssh_key(ack: Ack, ctx: BotContext, user: str, text: str) -> None:
    """`ssh-key <public key>` registers it; bare `ssh-key` shows the registered key's fingerprint."""
    if not text:
        key = ctx.service.ssh_key(user)
        if key is None:
            say(ack, messages.no_ssh_key_text(ctx.command))
        else:
            say(ack, f":key: Your registered SSH key: {key.key_type} `{key.fingerprint}`.")
        return
    key = ctx.service.register_ssh_key(user, text)
    say(ack, f":key: Registered your SSH key {key.key_type} `{key.fingerprint}`. SSH scopes certify this key from now on.")


def csr(ack: Ack, ctx: BotContext, user: str, text: str) -> None:
    """`csr <PEM>` registers it; bare `csr` shows the registered one."""
    if not text:
        registered = ctx.service.csr(user)
        say(ack, messages.no_csr_text(ctx.command) if registered is None else messages.csr_text(registered, registered=False))
        return
    say(ack, messages.csr_text(ctx.service.register_csr(user, text), registered=True))


def break_glass(ack: Ack, ctx: BotContext, user: str, words: list[str]) -> None:
    if not words:
        say(ack, messages.usage_text("Name the scope.", ctx.command, "break-glass <scope> [duration] <reason…>"))
        return
    scope, duration, reason = asking.split_request(words)
    # Acknowledged before Vault is called: with Vault slow, Slack would otherwise tell the person the command
    # failed while the grant exists and the approvers were alerted.
    approved = ctx.service.break_glass(user, scope, duration, reason, defer_issue=True)
    say(ack, messages.break_glass_text(approved, ctx.catalog.settings.alert_channel))
    ctx.later(tasks.issue(approved.id))


USAGE = {
    "revoke": "revoke <request-id>",
    "cancel": "cancel <request-id>",
    "nudge": "nudge <request-id>",
    "extend": "extend <request-id> [duration]",
}


def deferred_verb(text: str) -> tuple[str, list[str]] | None:
    """A subcommand carried out after its ack (revoke, cancel, extend, nudge) with the right arguments, or None."""
    if refused_character(text) is not None:
        return None
    words = text.split()
    verb, args = (words[0].lower(), words[1:]) if words else ("", [])
    if verb not in USAGE or not (len(args) == 1 or (verb == "extend" and len(args) == 2)):
        return None
    return verb, args


def act_on(
    ack: Ack, ctx: BotContext, user: str, verb: str, args: list[str], response_url: str | None, recorded: bool = False
) -> None:
    if not (len(args) == 1 or (verb == "extend" and len(args) == 2)):
        say(ack, messages.usage_text(f"`{verb}` takes one request ID.", ctx.command, USAGE[verb]))
        return
    ack()  # Vault may take a moment; the outcome follows through the response URL
    if not recorded:  # recorded in the inbox before this listener ran, a worker carries it out (see deferred.work_of)
        ctx.later(tasks.verb(user, verb, args, response_url))


def run_verb(ctx: BotContext, respond: Respond, user: str, verb: str, args: list[str]) -> None:
    operations = {
        "revoke": lambda: ctx.service.revoke(args[0], user),
        "cancel": lambda: ctx.service.cancel(args[0], user),
        "nudge": lambda: ctx.service.nudge(args[0], user),
        "extend": lambda: ctx.service.extend(args[0], user, args[1] if len(args) == 2 else None),
    }
    try:
        outcome = operations[verb]()
    except DomainError as error:
        respond(messages.error_text(error, ctx.command))
        return
    respond(blocks.outcome_text(verb, outcome))


def audit(ack: Ack, ctx: BotContext, user: str, text: str, response_url: str | None) -> None:
    try:
        fmt, _ = parse_audit_args(text, ctx)  # checked before the ack: a typo gets its answer at once
    except ValueError as error:
        # The error quotes what was typed: escaped, so it is shown and never read as markup.
        say(ack, messages.usage_text(messages.esc(error), ctx.command, "audit [--since T] [--until T] [--format csv|jsonl]"))
        return
    ctx.service.require_auditor(user, "audit_export")
    say(ack, f":hourglass_flowing_sand: Preparing the {fmt.upper()} export…")
    ctx.later(tasks.audit_export(user, text, response_url))


def run_audit_export(ctx: BotContext, respond: Respond, user: str, text: str) -> None:
    """After the ack: export (the use case checks the auditor again and audits the export), upload to the DM."""
    fmt, query = parse_audit_args(text, ctx)
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as out:
        count = ctx.service.export(user, query, out, fmt, via="slack")
        out.seek(0)
        content = out.read().encode("utf-8")
    name = f"jitbot-audit-{ctx.service.clock.now():%Y%m%dT%H%M%SZ}.{fmt}"
    channel = ctx.notifier.dm_channel(user)
    ctx.notifier.client.files_upload_v2(
        channel=channel,
        content=content,
        filename=name,
        title=name,
        initial_comment=f"Audit export: {count} events, SHA-256 {hashlib.sha256(content).hexdigest()[:16]}…",
    )
    respond(f":page_facing_up: Uploaded `{name}` ({count} events) to our DM.")


def parse_audit_args(text: str, ctx: BotContext) -> tuple[str, AuditQuery]:
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"Could not read the options ({exc}).") from None
    fmt, since, until = "csv", None, None
    now = ctx.service.clock.now()
    while tokens:
        flag = tokens.pop(0)
        if flag not in ("--since", "--until", "--format") or not tokens:
            raise ValueError(f"`{flag}` is not an audit option, or it lacks its value.")
        value = tokens.pop(0)
        if flag == "--format":
            if value not in ("csv", "jsonl"):
                raise ValueError(f"`{value}` is not a format; use csv or jsonl.")
            fmt = value
        elif flag == "--since":
            since = parse_time(value, now)
        else:
            until = parse_time(value, now)
    return fmt, AuditQuery(since=since, until=until)
