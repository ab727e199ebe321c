"""The one place that turns domain errors and news into the words people read in Slack."""

from __future__ import annotations

from datetime import datetime, timedelta

from grants.domain import DomainError, Request
from grants.durations import format_duration

HINTS = {
    "invalid_request": "Type `{command} <scope> <duration> <reason…>`, e.g. `{command} payments-read 30m INC-4411 replay refunds`, "
    "or `{command} help`.",
    "not_found": "Type `{command} list` to see your requests and their IDs.",
    "not_allowed": "Ask one of the scope's approvers, or `{command} help` for who may do what.",
    "already_decided": "Type `{command} list` to see where your requests stand.",
}


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def error_text(error: DomainError, command: str) -> str:
    hint = HINTS.get(error.code, "").format(command=command)
    return f":warning: {error}" + (f"\n{hint}" if hint else "")


def usage_text(problem: str, command: str, usage: str | None = None) -> str:
    hint = f"Type `{command} {usage}`." if usage else HINTS["invalid_request"].format(command=command)
    return f":warning: {problem}\n{hint}"


def news_text(request: Request, news: str, context: dict[str, object]) -> str:
    """The requester's DM for each step of their request; the request ID appears in every one."""
    rid, scope = request.id, request.scope
    if news == "approved":
        return f":white_check_mark: {rid}: your request for `{scope}` was approved by <@{request.decided_by}>. Issuing the credential…"
    if news == "denied":
        reason = f" Reason: {context['reason']}" if context.get("reason") else ""
        return f":no_entry: {rid}: your request for `{scope}` was denied by <@{request.decided_by}>.{reason}"
    if news == "timed_out":
        return (
            f":hourglass: {rid}: nobody decided your request for `{scope}` in time, so it ended. Ask again if you still need it."
        )
    if news == "issue_failed":
        return (
            f":x: {rid}: your request for `{scope}` was approved, but the credential could not be issued "
            f"({context.get('error', 'Vault error')}). Nothing was issued; please request again."
        )
    if news == "expired":
        return f":lock: {rid}: your access to `{scope}` ended at {when(request.ended_at)} and the credential was revoked."
    if news == "revoked":
        by = context.get("actor")
        who = "you" if by == request.requester else f"<@{by}>"
        return f":lock: {rid}: your access to `{scope}` was revoked by {who} at {when(request.ended_at)}."
    return f"{rid}: {news}"


def credential_text(request: Request, wrapping_token: str, unwrap_hint: str, wrap_ttl: timedelta) -> str:
    cli = unwrap_hint.split()[0] if unwrap_hint else "vault"
    return (
        f":key: {request.id}: your `{request.scope}` credential is ready. It lives {format_duration(request.duration)} "
        f"(until {when(request.expires_at)}) and cannot be renewed.\n"
        f"It is response-wrapped: unwrap it once, within {format_duration(wrap_ttl)}:\n"
        f"```{cli} unwrap {wrapping_token}```"
    )


def help_text(command: str, scopes: list[str]) -> str:
    return "\n".join(
        [
            f"*{command}* — just-in-time elevation with approval, scoped credentials and an audit trail.",
            f"• `{command}` — open the request form",
            f"• `{command} <scope> <duration> <reason…>` — request elevation, e.g. `{command} payments-read 30m INC-4411 replay refunds`",
            f"• `{command} list` — your requests and active grants (approvers: also what waits on you)",
            f"• `{command} revoke <request-id>` — end a grant now (or cancel your pending request)",
            f"• `{command} audit [--since T] [--until T] [--format csv|jsonl]` — auditors: the audit trail as a file",
            f"• `{command} help` — this text",
            "Durations look like `90s`, `15m`, `1h30m`, `2d`. Times (T) are ISO dates such as `2026-11-01` or ages such as `7d`.",
            f"Scopes you can request: {', '.join(f'`{s}`' for s in scopes) or 'none'}.",
        ]
    )
