"""Pure Block Kit builders: every message is re-rendered from the request's current state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot import slack_limits as limit
from bot.messages import catalog_text, esc, when
from grants.approval_catalog import signed_in
from grants.catalog import Catalog, Scope
from grants.domain import Request, State, decision_ref
from grants.durations import format_duration
from grants.steps import step_progress

Block = dict[str, Any]

APPROVE, DENY, CANCEL, DONE = "approve", "deny", "cancel", "done"
APPROVE_FOR = "approve_for"  # the Approve path's choice of a shorter grant
SHORTER = tuple(timedelta(minutes=m) for m in (5, 15, 30, 60, 120, 240))
EXTEND, NUDGE, REVIEW_ACK, REVIEW_FLAG = "extend", "nudge", "review_acknowledged", "review_flagged"
REQUEST_MODAL, DENY_MODAL = "request_modal", "deny_modal"
PUBLIC_KEY = "public_key"  # the request form's optional SSH public key input (shown when none is registered)
CSR = "csr"  # the request form's optional CSR input for pki scopes (shown when none is registered)
SCOPE_SEARCH = "scope_search"  # the request form's external_select, whose options the bot serves

_STATUS = {
    State.PENDING: ":hourglass_flowing_sand: Waiting for approval",
    State.APPROVED: ":white_check_mark: Approved — issuing the credential",
    State.ACTIVE: ":large_green_circle: Active",
    State.EXPIRED: ":lock: Expired — credential revoked",
    State.REVOKED: ":lock: Revoked",
    State.DENIED: ":no_entry: Denied",
    State.CANCELLED: ":heavy_multiplication_x: Cancelled by the requester",
    State.TIMED_OUT: ":hourglass: Timed out — nobody decided in time",
    State.FAILED: ":x: Approved, but issuing failed",
}


def _text(markdown: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": limit.clip(markdown, limit.SECTION_TEXT)}}


def _context(markdown: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": limit.clip(markdown, limit.CONTEXT_TEXT)}]}


def _field(markdown: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": limit.clip(markdown, limit.SECTION_FIELD)}


def _plain(text: str, most: int = limit.MODAL_TITLE) -> dict[str, Any]:
    return limit.plain(text, most)


def button(label: str, action_id: str, request_id: str, style: str | None = None) -> Block:
    """A button carrying only the request ID: whoever clicks it is re-authorized by the service."""
    value = limit.clip(request_id, limit.BUTTON_VALUE)
    element: Block = {"type": "button", "action_id": action_id, "value": value, "text": _plain(label, limit.BUTTON_TEXT)}
    return {**element, "style": style} if style else element


def decide_buttons(request: Request) -> Block:
    """Approve and Deny carry the exact decision they are shown for (the request, or its N-th extension): a click
    replayed later, when the request waits for something else, is refused as out of date instead of deciding it."""
    ref = decision_ref(request)
    elements = [button("Approve", APPROVE, ref, "primary"), button("Deny", DENY, ref, "danger")]
    shorter = [d for d in SHORTER if d < request.duration] if ref.endswith(":r") else []  # extensions: as asked
    if shorter:
        options = [{"text": _plain(format_duration(d)), "value": f"{ref}@{format_duration(d)}"} for d in shorter]
        elements.append(
            {"type": "static_select", "action_id": APPROVE_FOR, "placeholder": _plain("Approve for less…"), "options": options}
        )
    return {"type": "actions", "block_id": f"decide:{ref}", "elements": elements}


def _who(user: str | None) -> str:
    return "auto-approval" if user == "system" else f"<@{user}>"


def status_line(request: Request, signed_in: frozenset[str] = frozenset()) -> str:
    """One line that says where the request stands, who moved it there and when (and who approved with sign-in)."""
    parts = [_STATUS[request.state]]
    if request.state is State.DENIED:
        parts[0] += f" by {_who(request.decided_by)} at {when(request.approval.decided_at)}"
    elif request.state is State.REVOKED:  # by `system`: jitbot ended it itself (a closed ticket), not an auto-approval
        who = "jitbot" if request.decided_by == "system" else _who(request.decided_by)
        parts[0] += f" by {who} at {when(request.ended_at)}"
    elif request.state in (State.EXPIRED, State.TIMED_OUT, State.CANCELLED, State.FAILED):
        parts[0] += f" at {when(request.ended_at)}"
    elif request.state is State.ACTIVE:
        parts.append(f"until {when(request.expires_at)}")
    if request.break_glass:
        parts.append(":rotating_light: break-glass, no approval")
    elif request.approvals:
        verb = "approvals so far:" if request.state is State.PENDING else "approved by"
        parts.append(
            f"{verb} " + ", ".join(f"<@{a}>" + (" (approved with sign-in)" if a in signed_in else "") for a in request.approvals)
        )
    elif request.decided_by == "system" and request.state not in (State.PENDING, State.TIMED_OUT):
        parts.append("auto-approved by catalog rule")
    if request.grant and request.grant.extensions:
        parts.append(f"extended {request.grant.extensions} time(s)")
    if request.extension_pending:
        parts.append(f"asks {format_duration(request.extension_pending)} more")
    if request.review_state:
        parts.append(
            f"review: {request.review_state}"
            + (f" by <@{request.review.reviewed_by}>" if request.review and request.review.reviewed_by else "")
        )
    return " · ".join(parts)


def outcome_text(verb: str, request: Request) -> str:
    """The reply to `revoke`, `cancel`, `extend` and `nudge`."""
    if verb == "nudge":
        return f":wave: {request.id}: the approvers were reminded."
    if verb == "extend" and request.extension_pending:
        return f":hourglass: {request.id}: extension by {format_duration(request.extension_pending)} asked; an approver decides."
    if verb == "extend":
        return f":hourglass: {request.id}: extended until {when(request.expires_at)}; the new credential comes by DM."
    return f"{request.id}: {status_line(request)}"


def review_list(reviews: list[Request]) -> str:
    if not reviews:
        return "No break-glass review is open."
    lines = ["*Open break-glass reviews*"]
    lines += [
        f"• `{r.id}` <@{r.requester}> took `{r.scope}` — {esc(r.reason)} · due {when(r.review.due_at if r.review else None)}"
        for r in reviews
    ]
    return limit.clip("\n".join(lines), limit.MESSAGE_TEXT)


def _approvals(request: Request) -> str:
    return "none (break-glass)" if request.break_glass else f"{len(request.approvals)} of {request.approval.required}"


def review_buttons(request_id: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"review:{request_id}",
        "elements": [
            button("Acknowledge", REVIEW_ACK, request_id, "primary"),
            button("Flag", REVIEW_FLAG, request_id, "danger"),
        ],
    }


def approval_message(request: Request, catalog: Catalog, step_done: bool = False) -> tuple[str, list[Block]]:
    """The approvers' message: who, what, how long, why, the request ID and, while something waits
    on the approvers (a decision, an extension, a break-glass review), its buttons."""
    scope = catalog.scopes.get(request.scope)
    description = f" — {catalog_text(scope.description)}" if scope else ""
    fallback = f"{request.id}: <@{request.requester}> requests `{request.scope}` for {format_duration(request.duration)}"
    title = f":rotating_light: *BREAK-GLASS {request.id}*" if request.break_glass else f"*Elevation request {request.id}*"
    verb = "took" if request.break_glass else ("asks for" if request.on_behalf_of else "requests")
    service = f" for service *{esc(request.on_behalf_of.removeprefix('entity:'))}*" if request.on_behalf_of else ""
    if request.on_behalf_of:
        fallback += f" for service {request.on_behalf_of.removeprefix('entity:')}"
    blocks: list[Block] = [
        _text(f"{title}\n<@{request.requester}> {verb} *`{request.scope}`*{service}{description}"),
        {
            "type": "section",
            "fields": [
                _field(f"*Requester*\n<@{request.requester}>"),
                _field(f"*Scope*\n`{request.scope}`"),
                _field(f"*Duration*\n{format_duration(request.duration)}"),
                _field(f"*Approvals*\n{_approvals(request)}"),
                _field(f"*Reason*\n{esc(request.reason) or '—'}"),
                _field(f"*Request ID*\n`{request.id}`"),
            ],
        },
    ]
    if request.state is State.PENDING:
        if scope is not None and len(scope.steps) > 1:
            blocks.append(_context(_steps(scope, request)))
        if step_done:
            blocks.append(_context("Your step is done; the next step's approvers have the request now."))
        else:
            blocks.append(decide_buttons(request))
        blocks.append(_context(f"Undecided requests end at {when(request.pending_until)}."))
    elif request.state is State.ACTIVE and request.extension_pending:
        blocks.append(_text(f"<@{request.requester}> asks to extend by *{format_duration(request.extension_pending)}*."))
        blocks.append(decide_buttons(request))
    if request.review_state == "open":
        blocks.append(_text("*Post-hoc review:* an approver must acknowledge this break-glass use or flag it."))
        blocks.append(review_buttons(request.id))
    blocks.append(_context(status_line(request, signed_in(scope, request.approvals) if scope is not None else frozenset())))
    return fallback, blocks


def _steps(scope: Scope, request: Request) -> str:
    index, have = step_progress(scope, request.approvals)
    names = [f"{i + 1}. {step.name or 'approval'} ({step.approvals})" for i, step in enumerate(scope.steps)]
    waiting = scope.steps[index].name if index < len(scope.steps) else "done"
    return f"Approval steps: {' → '.join(names)} · now waiting for *{waiting}* ({have} of {scope.steps[min(index, len(scope.steps) - 1)].approvals})"


def expiring(request: Request, text: str, can_extend: bool) -> list[Block]:
    """The expiry warning DM: Extend (when policy allows) and I'm done."""
    elements = [button("Extend", EXTEND, request.id, "primary")] if can_extend else []
    elements.append(button("I'm done", DONE, request.id))
    return [_text(text), {"type": "actions", "block_id": f"expiring:{request.id}", "elements": elements}]


def extension_offer(text: str, request_id: str) -> list[Block]:
    return [
        _text(text),
        {"type": "actions", "block_id": f"offer:{request_id}", "elements": [button("Extend", EXTEND, request_id, "primary")]},
    ]


def request_list(mine: list[Request], waiting: list[Request]) -> str:
    lines = ["*Your requests*"] if mine else ["You have no requests yet."]
    lines += [f"• `{r.id}` `{r.scope}` {format_duration(r.duration)} — {status_line(r)}" for r in mine]
    if waiting:
        lines.append("*Waiting on you*")
        lines += [
            f"• `{r.id}` <@{r.requester}> wants `{r.scope}` for {format_duration(r.duration)}: {esc(r.reason)}" for r in waiting
        ]
    return limit.clip("\n".join(lines), limit.MESSAGE_TEXT)


def scope_option(catalog: Catalog, name: str) -> dict[str, Any]:
    """One scope in the request form's picker: its name, and its description when it has one."""
    option: dict[str, Any] = {"text": _plain(name, limit.OPTION_TEXT), "value": limit.clip(name, limit.OPTION_VALUE)}
    scope = catalog.scopes.get(name)
    if scope is not None and scope.description.strip():  # Slack refuses an empty description
        option["description"] = _plain(scope.description.strip(), limit.OPTION_TEXT)
    return option


def scope_options(catalog: Catalog, scopes: list[str], typed: str = "") -> list[dict[str, Any]]:
    """The options the bot serves to the external select: what the person may request, filtered by what
    they typed (in the name or the description), at most Slack's 100."""
    needle = typed.strip().lower()
    matching = [
        name
        for name in scopes
        if not needle or needle in name or needle in (catalog.scopes[name].description.lower() if name in catalog.scopes else "")
    ]
    return [scope_option(catalog, name) for name in matching[: limit.OPTIONS]]


def request_modal(
    catalog: Catalog, scopes: list[str], channel: str, ask_public_key: bool = False, ask_csr: bool = False
) -> dict[str, Any]:
    """The request form. Up to 100 scopes are listed in the form itself; beyond Slack's 100 options the
    picker becomes an external_select whose options the bot serves as the person types."""
    if len(scopes) <= limit.OPTIONS:
        picker: Block = {"type": "static_select", "action_id": "value", "options": scope_options(catalog, scopes)}
    else:
        picker = {
            "type": "external_select",
            "action_id": SCOPE_SEARCH,
            "min_query_length": 0,
            "placeholder": _plain("Type to search the scopes", 150),
        }
    return {
        "type": "modal",
        "callback_id": REQUEST_MODAL,
        "private_metadata": limit.clip(channel, limit.PRIVATE_METADATA),
        "title": _plain("Request elevation"),
        "submit": _plain("Request"),
        "close": _plain("Cancel"),
        "blocks": [
            {"type": "input", "block_id": "scope", "label": _plain("Scope"), "element": picker},
            {
                "type": "input",
                "block_id": "duration",
                "label": _plain("Duration"),
                "hint": _plain("e.g. 15m, 1h, 1h30m; empty for the scope's default", limit.INPUT_HINT),
                "optional": True,
                "element": {"type": "plain_text_input", "action_id": "value"},
            },
            {
                "type": "input",
                "block_id": "start",
                "label": _plain("Start (optional)"),
                "hint": _plain("a later start, UTC: 22:00 or 2026-12-08T22:00+00:00; empty for now", limit.INPUT_HINT),
                "optional": True,
                "element": {"type": "plain_text_input", "action_id": "value"},
            },
            {
                "type": "input",
                "block_id": "reason",
                "label": _plain("Reason"),
                "optional": True,
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True},
            },
            *(
                [
                    {
                        "type": "input",
                        "block_id": PUBLIC_KEY,
                        "label": _plain("SSH public key (for ssh scopes)", limit.INPUT_LABEL),
                        "hint": _plain(
                            "You have none registered: paste the one line of your ~/.ssh/id_ed25519.pub (never the private key)",
                            limit.INPUT_HINT,
                        ),
                        "optional": True,
                        "element": {"type": "plain_text_input", "action_id": "value"},
                    }
                ]
                if ask_public_key
                else []
            ),
            *(
                [
                    {
                        "type": "input",
                        "block_id": CSR,
                        "label": _plain("Certificate signing request (for pki scopes)", limit.INPUT_LABEL),
                        "hint": _plain(
                            "You have none registered: paste your client.csr, -----BEGIN CERTIFICATE REQUEST----- and all "
                            "(never the private key)",
                            limit.INPUT_HINT,
                        ),
                        "optional": True,
                        "element": {"type": "plain_text_input", "action_id": "value", "multiline": True},
                    }
                ]
                if ask_csr
                else []
            ),
        ],
    }


def receipt(text: str, request: Request) -> list[Block]:
    """The requester's confirmation of a new request, with a Cancel request button while it is pending."""
    if request.state is not State.PENDING:
        return [_text(text)]
    cancel = button("Cancel request", CANCEL, request.id)
    return [_text(text), {"type": "actions", "block_id": f"cancel:{request.id}", "elements": [cancel]}]


def note(markdown: str) -> list[Block]:
    """A message that is just this text: what a replaced message turns into."""
    return [_text(markdown)]


def thread_line(request: Request) -> str:
    """The one-line reply posted in the approval message's thread when the request moves on."""
    return f"{request.id}: {status_line(request)}"


def deny_modal(request: Request, decision: str) -> dict[str, Any]:
    """Asks the approver for an optional reason; the request ID travels in private_metadata."""
    if request.extension_pending:
        asks = f"asks for {format_duration(request.extension_pending)} more of `{request.scope}`"
        summary = f"Deny the extension of *{request.id}*: <@{request.requester}> {asks}."
    else:
        summary = (
            f"Deny *{request.id}*: <@{request.requester}> asks for `{request.scope}` for {format_duration(request.duration)}."
        )
    return {
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": limit.clip(decision, limit.PRIVATE_METADATA),
        "title": _plain("Deny request"),
        "submit": _plain("Deny"),
        "close": _plain("Back"),
        "blocks": [
            _text(summary + (f"\n>{esc(request.reason)}" if request.reason else "")),
            {
                "type": "input",
                "block_id": "reason",
                "optional": True,
                "label": _plain("Reason (the requester sees it)", limit.INPUT_LABEL),
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 500},
            },
        ],
    }


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """What a modal turns into when its submission was refused: the reason, and a Close button."""
    return {"type": "modal", "title": _plain(title), "close": _plain("Close"), "blocks": [_text(text)]}
