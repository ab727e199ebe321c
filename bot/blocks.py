"""Pure Block Kit builders: every message is re-rendered from the request's current state."""

from __future__ import annotations

from typing import Any

from bot.messages import when
from grants.catalog import Catalog
from grants.domain import Request, State
from grants.durations import format_duration

Block = dict[str, Any]

APPROVE, DENY = "approve", "deny"
REQUEST_MODAL = "request_modal"

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
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown}}


def _context(markdown: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": markdown}]}


def status_line(request: Request) -> str:
    line = _STATUS[request.state]
    if request.state in (State.APPROVED, State.ACTIVE, State.DENIED) and request.decided_by:
        who = "auto-approval" if request.decided_by == "system" else f"<@{request.decided_by}>"
        verb = "denied" if request.state is State.DENIED else "approved"
        line += f" · {verb} by {who} at {when(request.decided_at)}"
    if request.approvals and request.state is not State.DENIED:
        line += " · approvals: " + ", ".join(f"<@{a}>" for a in request.approvals)
    if request.state is State.ACTIVE:
        line += f" · until {when(request.expires_at)}"
    elif request.state is State.REVOKED:
        line += f" by <@{request.decided_by}> at {when(request.ended_at)}"
    elif request.state in (State.EXPIRED, State.TIMED_OUT, State.CANCELLED, State.FAILED):
        line += f" at {when(request.ended_at)}"
    return line


def approval_message(request: Request, catalog: Catalog) -> tuple[str, list[Block]]:
    """The approvers' message: who, what, how long, why, the request ID and, while pending, the buttons."""
    scope = catalog.scopes.get(request.scope)
    description = f" — {scope.description}" if scope else ""
    fallback = f"{request.id}: <@{request.requester}> requests `{request.scope}` for {format_duration(request.duration)}"
    blocks: list[Block] = [
        _text(f"*Elevation request {request.id}*\n<@{request.requester}> requests *`{request.scope}`*{description}"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Requester*\n<@{request.requester}>"},
                {"type": "mrkdwn", "text": f"*Scope*\n`{request.scope}`"},
                {"type": "mrkdwn", "text": f"*Duration*\n{format_duration(request.duration)}"},
                {"type": "mrkdwn", "text": f"*Approvals*\n{len(request.approvals)} of {request.approvals_required}"},
                {"type": "mrkdwn", "text": f"*Reason*\n{request.reason or '—'}"},
                {"type": "mrkdwn", "text": f"*Request ID*\n`{request.id}`"},
            ],
        },
    ]
    if request.state is State.PENDING:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"decide:{request.id}",
                "elements": [
                    {"type": "button", "action_id": APPROVE, "value": request.id, "style": "primary",
                     "text": {"type": "plain_text", "text": "Approve"}},
                    {"type": "button", "action_id": DENY, "value": request.id, "style": "danger",
                     "text": {"type": "plain_text", "text": "Deny"}},
                ],
            }
        )  # fmt: skip
        blocks.append(_context(f"Undecided requests end at {when(request.pending_until)}."))
    blocks.append(_context(status_line(request)))
    return fallback, blocks


def request_list(mine: list[Request], waiting: list[Request]) -> str:
    lines = ["*Your requests*"] if mine else ["You have no requests yet."]
    lines += [f"• `{r.id}` `{r.scope}` {format_duration(r.duration)} — {status_line(r)}" for r in mine]
    if waiting:
        lines.append("*Waiting on you*")
        lines += [f"• `{r.id}` <@{r.requester}> wants `{r.scope}` for {format_duration(r.duration)}: {r.reason}" for r in waiting]
    return "\n".join(lines)


def request_modal(catalog: Catalog, user: str, channel: str) -> dict[str, Any]:
    options = [
        {"text": {"type": "plain_text", "text": name[:75]}, "value": name,
         "description": {"type": "plain_text", "text": catalog.scopes[name].description[:75]}}
        for name in catalog.requestable_by(user)
    ][:100]  # fmt: skip
    return {
        "type": "modal",
        "callback_id": REQUEST_MODAL,
        "private_metadata": channel,
        "title": {"type": "plain_text", "text": "Request elevation"},
        "submit": {"type": "plain_text", "text": "Request"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": "scope", "label": {"type": "plain_text", "text": "Scope"},
             "element": {"type": "static_select", "action_id": "value", "options": options}},
            {"type": "input", "block_id": "duration", "label": {"type": "plain_text", "text": "Duration"},
             "hint": {"type": "plain_text", "text": "e.g. 15m, 1h, 1h30m; empty for the scope's default"}, "optional": True,
             "element": {"type": "plain_text_input", "action_id": "value"}},
            {"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Reason"}, "optional": True,
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True}},
        ],
    }  # fmt: skip
