"""New requests (`/elevate <scope> …` and the request form): checked from the catalog before the ack, made after it.

The gate records the request in the inbox with an ID made before the insert (`deferred.work_of` calls `from_command`
and `from_form`), so the ack can name it; `run` makes it from the inbox row, here at once or, after a crash, by claim.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot import blocks, messages, tasks
from grants.csr import CsrError, parse_csr
from grants.domain import DomainError, ExtensionOffered, State
from grants.durations import looks_like_duration
from grants.ssh_keys import SshKeyError, parse_public_key
from grants.text import refused_character

if TYPE_CHECKING:
    from bot.context import BotContext  # the context runs the listeners' deferred work: no import at run time

log = logging.getLogger(__name__)


def read_words(words: list[str]) -> tuple[str, str | None, str | None, str | None, str] | None:
    """`<scope> [for <service>] [duration] [at <time>] <reason…>` as (scope, service, duration, start, reason); None
    when `for` names nothing."""
    service = None
    if len(words) >= 2 and words[1].lower() == "for":
        # `<scope> for <service> <duration> <reason…>`: a vault_identity grant for a service the scope lists.
        if len(words) < 3:
            return None
        service, words = words[2], [words[0], *words[3:]]
    scope, duration, reason = split_request(words)
    start, reason = split_start(reason)
    return scope, service, duration, start, reason


def split_request(words: list[str]) -> tuple[str, str | None, str]:
    """`<scope> [duration] <reason…>`: a word that starts with a digit is the duration."""
    scope, rest = words[0].lower(), words[1:]
    duration = rest[0] if rest and looks_like_duration(rest[0]) else None
    return scope, duration, " ".join(rest[1:] if duration else rest)


def split_start(reason: str) -> tuple[str | None, str]:
    """`at <time> <reason…>`: a later start (`at 22:00`, UTC, or an ISO 8601 moment) before the reason."""
    words = reason.split(" ")
    if len(words) >= 2 and words[0].lower() == "at":
        return words[1], " ".join(words[2:])
    return None, reason


def from_command(ctx: BotContext, user: str, text: str, response_url: str | None) -> tasks.Task | None:
    """The request a slash command makes, if the catalog alone allows it (pure: no database, no Vault), with a new ID."""
    words = text.split()
    if refused_character(text) is not None or not words or words[0].lower() not in ctx.catalog.scopes:
        return None
    read = read_words(words)
    if read is None:
        return None
    scope, service, duration, start, reason = read
    try:
        planned = ctx.service.plan(user, scope, duration, reason, service, start_text=start)
    except DomainError:
        return None  # the listener answers the refusal in the ack
    return tasks.new_request(planned.id, user, scope, duration, reason, service, response_url, start=start)


def form_fields(view: dict[str, Any]) -> dict[str, Any]:
    """What the request form holds: scope, duration, reason, a later start, and a pasted public key or CSR (never
    secret)."""
    values = (view.get("state") or {}).get("values") or {}
    # The scope comes from the static select (action "value") or, past 100 scopes, the external select.
    picker = values.get("scope", {})
    selected = (picker.get("value") or picker.get(blocks.SCOPE_SEARCH) or {}).get("selected_option") or {}
    return {
        "scope": str(selected.get("value") or ""),
        "duration": (values.get("duration", {}).get("value", {}).get("value") or "").strip() or None,
        "reason": values.get("reason", {}).get("value", {}).get("value") or "",
        "start": (values.get("start", {}).get("value", {}).get("value") or "").strip() or None,
        "public_key": (values.get(blocks.PUBLIC_KEY, {}).get("value", {}).get("value") or "").strip(),
        "csr": (values.get(blocks.CSR, {}).get("value", {}).get("value") or "").strip(),
    }


def from_form(ctx: BotContext, user: str, view: dict[str, Any]) -> tasks.Task | None:
    """The request a form submission makes, if nothing under a field would be wrong (pure), with a new ID."""
    fields = form_fields(view)
    scope = ctx.catalog.scopes.get(fields["scope"])
    asked = {block.get("block_id") for block in view.get("blocks") or []}  # the form asks for what was not registered
    try:
        if scope is None:
            return None
        if fields["public_key"]:
            parse_public_key(fields["public_key"])  # a private key is refused (and audited) by the listener's path
        elif scope.needs_public_key and blocks.PUBLIC_KEY in asked:
            return None
        if fields["csr"]:
            if scope.needs_csr and scope.csr_problems(parse_csr(fields["csr"]), user):
                return None
        elif scope.needs_csr and blocks.CSR in asked:
            return None
        planned = ctx.service.plan(user, fields["scope"], fields["duration"], fields["reason"], start_text=fields["start"])
    except (DomainError, SshKeyError, CsrError):
        return None
    return tasks.new_request(
        planned.id, user, fields["scope"], fields["duration"], fields["reason"], None, None, start=fields["start"],
        public_key=fields["public_key"] or None, csr=fields["csr"] or None,
    )  # fmt: skip


def receipt(ctx: BotContext, planned: Any) -> tuple[str, list[dict[str, Any]]]:
    text = messages.receipt_text(planned, ctx.catalog.scopes[planned.scope], ctx.service.people, ctx.command)
    return text, blocks.receipt(text, planned)


def run(ctx: BotContext, args: dict[str, Any]) -> None:
    """After the ack, from the inbox row: register what the form pasted, make the request under the ID the ack named
    (carried on, never made twice, when this runs again after a crash), tell the person, issue an approved one."""
    user, request_id = str(args["user"]), str(args["request_id"])
    url = args.get("response_url")

    def tell(text: str, shown: list[dict[str, Any]] | None = None) -> None:
        if url:  # the slash command's own place; the form has none, so a DM
            ctx.responder(str(url))(text=text, blocks=shown, response_type="ephemeral", replace_original=False)
        else:
            ctx.notifier.dm(user, text, shown)

    try:
        if args.get("public_key"):
            ctx.service.register_ssh_key(user, str(args["public_key"]))
        if args.get("csr"):
            ctx.service.register_csr(user, str(args["csr"]))
        created = ctx.service.request(
            user, str(args["scope"]), args.get("duration"), str(args["reason"]), args.get("service"),
            defer_issue=True, start_text=args.get("start"), request_id=request_id,
        )  # fmt: skip
    except ExtensionOffered as offer:
        text = messages.error_text(offer, ctx.command)
        tell(text, blocks.extension_offer(text, str(offer.context["request_id"])))
        return
    except DomainError as error:
        tell(messages.not_made_text(request_id, messages.error_text(error, ctx.command)))
        return
    except Exception:
        # The ack named this request: without a word here it would vanish (database or Vault down, say).
        log.exception("a new request could not be made", extra={"request_id": request_id})
        tell(messages.not_made_text(request_id, messages.unreachable_text(ctx.command)))
        return
    if not url:  # the form closed with an empty ack: the receipt comes by DM
        tell(*receipt(ctx, created))
    if created.state is State.APPROVED:
        ctx.service.issue_approved(created.id)
