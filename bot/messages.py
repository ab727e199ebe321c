"""The one place that turns domain errors and news into the words people read in Slack."""

from __future__ import annotations

import re
from datetime import datetime

from grants import allowances
from grants.catalog import Scope
from grants.credentials import Delivery
from grants.csr import Csr
from grants.domain import AlreadyDecided, DomainError, NotAllowed, Request, State
from grants.durations import format_duration
from grants.lifecycle import Event
from grants.outbox import Alert, News
from grants.people import People

HINTS = {
    "invalid_request": "Type `{command} &lt;scope&gt; &lt;duration&gt; &lt;reason…&gt;`, e.g. `{command} payments-read 30m INC-4411 replay refunds`, "
    "or `{command} help`.",
    "not_found": "Type `{command} list` to see your requests and their IDs.",
    "not_allowed": "Ask one of the scope's approvers, or `{command} help` for who may do what.",
    "already_decided": "Type `{command} list` to see where your requests stand.",
    "already_open": "Use it, or end it with `{command} revoke {request_id}` before asking again; `{command} list` shows it.",
    "ask_normally": "Ask for it the usual way: `{command} {scope} &lt;duration&gt; &lt;reason…&gt;`.",
    "extension_offered": "Press Extend, or type `{command} extend {request_id} [duration]`.",
    "ssh_key_missing": "Register it with `{command} ssh-key &lt;the line of your ~/.ssh/id_ed25519.pub&gt;` "
    "(or paste it in the request form), then ask again.",
    "csr_missing": "Register one with `{command} csr &lt;the PEM of your client.csr&gt;` (or paste it in the request form), "
    "then ask again. Keep the private key to yourself: only the CSR is pasted.",
}


def esc(text: object) -> str:
    """People's own words in mrkdwn: `<`, `>` and `&` escaped, so a reason cannot ping @channel,
    fake a mention or hide a link behind other text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


MAX_NAMED = 20  # people named in one message; the rest are counted, so 250 approvers stay readable and in limits


_CATALOG_MARKUP = re.compile(r"(<(?:@[UW][A-Z0-9]+|#C[A-Z0-9]+(?:\|[^<>]*)?|https?://[^<>|\s]+(?:\|[^<>]*)?)>)")


def catalog_text(text: object) -> str:
    """An admin's words from the catalog (a scope description): escaped, except the mentions, channel links and
    web links they may have written on purpose (`<https://wiki/runbook|runbook>`)."""
    return "".join(part if _CATALOG_MARKUP.fullmatch(part) else esc(part) for part in _CATALOG_MARKUP.split(str(text)))


def mentions(users: list[str] | tuple[str, ...], separator: str = ", ") -> str:
    """`<@U…>` for the first MAX_NAMED people, then how many more."""
    named = separator.join(f"<@{u}>" for u in users[:MAX_NAMED])
    return named + (f" and {len(users) - MAX_NAMED} more" if len(users) > MAX_NAMED else "")


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def refusal_text(error: DomainError) -> str:
    """The refusal's sentence in mrkdwn. The core writes plain text (it may quote what someone typed, so it is
    escaped whole: nothing in it can ping or link); mentions are written here, from the refusal's typed fields."""
    if isinstance(error, AlreadyDecided) and error.request_id and error.state:
        who = f" by {mention(error.decided_by)}" if error.decided_by and error.decided_by != "system" else ""
        return f"{esc(error.request_id)} was already decided: it is {error.state}{who}."
    return esc(error)


def error_text(error: DomainError, command: str) -> str:
    # The hint's blanks come from the refusal's typed fields; a field it lacks stays a visible placeholder.
    request_id = esc(error.context.get("request_id", "<request-id>"))
    scope = esc(error.context.get("scope", "<scope>"))
    hint = HINTS.get(error.code, "").format(command=command, request_id=request_id, scope=scope)
    icon = ":hourglass:" if error.code == "extension_offered" else ":warning:"
    rule = f" (rule `{error.rule}`)" if isinstance(error, NotAllowed) else ""
    return f"{icon} {refusal_text(error)}{rule}" + (f"\n{hint}" if hint else "")


def no_ssh_key_text(command: str) -> str:
    """The answer to a bare `ssh-key` from someone with no key registered."""
    return (
        f":key: You have no SSH key registered. Register one: `{command} ssh-key &lt;the line of your ~/.ssh/id_ed25519.pub&gt;`."
    )


def no_csr_text(command: str) -> str:
    """The answer to a bare `csr` from someone with no CSR registered."""
    return f":key: You have no CSR registered. Register one: `{command} csr &lt;the PEM of your client.csr&gt;`."


def csr_text(csr: Csr, registered: bool) -> str:
    """What a person is told about their CSR: its key and names, never anything secret (a CSR holds none)."""
    name = f" for `{esc(csr.common_name)}`" if csr.common_name else ""
    what = f"{csr.key_type} {csr.bits}-bit key `{csr.fingerprint[:16]}…`{name}"
    if registered:
        return f":key: Registered your CSR ({what}). pki scopes sign it from now on; keep its private key to yourself."
    return f":key: Your registered CSR: {what}."


def usage_text(problem: str, command: str, usage: str | None = None) -> str:
    hint = f"Type `{command} {esc(usage)}`." if usage else HINTS["invalid_request"].format(command=command)
    return f":warning: {problem}\n{hint}"


_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


def mention(user: object) -> str:
    """A Slack user ID as a mention; anything else (`system`, a forged value) as escaped text, never as markup."""
    name = str(user)
    return f"<@{name}>" if _USER_ID.fullmatch(name) else esc(name)


def reach(target: object) -> str:
    """Someone Slack could not reach: a person as a mention, a channel by its ID (as the catalog holds it)."""
    name = str(target)
    return esc(name) if name[:1] in ("C", "G") else mention(name)


def news_text(request: Request, news: Event | News, context: dict[str, object]) -> str:
    """The requester's DM for each step of their request; the request ID appears in every one."""
    rid, scope = esc(request.id), esc(request.scope)
    match news:
        case Event.APPROVED:
            by = ", ".join(mention(a) for a in request.approvals) or mention(request.decided_by)
            if context.get("asked"):
                return (
                    f":white_check_mark: {rid}: your request for `{scope}` was approved by {by} for "
                    f"{format_duration(request.duration)}, less than the {esc(context['asked'])} you asked for."
                )
            if request.starts_at is not None and request.grant is None:
                return f":white_check_mark: {rid}: your request for `{scope}` was approved by {by}; the credential is issued at its start, {when(request.starts_at)}."
            return f":white_check_mark: {rid}: your request for `{scope}` was approved by {by}. Issuing the credential…"
        case Event.DENIED:
            reason = f" Reason: {esc(context['reason'])}" if context.get("reason") else ""
            return f":no_entry: {rid}: your request for `{scope}` was denied by {mention(request.decided_by)}.{reason}"
        case Event.TIMED_OUT:
            return f":hourglass: {rid}: nobody decided your request for `{scope}` in time, so it ended. Ask again if you still need it."
        case Event.ISSUE_FAILED:
            return (
                f":x: {rid}: your request for `{scope}` was approved, but the credential could not be issued "
                f"({esc(context.get('error', 'Vault error'))}). Nothing was issued; please request again."
            )
        case Event.EXPIRED:
            return f":lock: {rid}: your access to `{scope}` ended at {when(request.ended_at)} and the credential was revoked."
        case Event.REVOKED:
            by = str(context.get("actor"))
            who = "you" if by == request.requester else "jitbot" if by == "system" else mention(by)
            text = f":lock: {rid}: your access to `{scope}` was revoked by {who} at {when(request.ended_at)}."
            if context.get("cause") == "ticket_closed" and request.ticket:
                text = text[:-1] + f", because its ticket {esc(request.ticket.split(':', 1)[-1])} was closed."
            if context.get("caveat"):
                # What the kind's revoke cannot end (open SSH sessions survive), in the kind's own words: said plainly.
                text += f" {esc(str(context['caveat']))}"
            return text
        case News.UNREACHABLE:
            people = context.get("people") or []
            who = ", ".join(reach(p) for p in people) if isinstance(people, list) else ""
            return (
                f":warning: {rid}: nobody could be asked to approve `{scope}`: Slack could not reach {who or 'its approvers'}. "
                "The admins were alerted; cancel it and ask again once they have fixed it, or ask an approver directly."
            )
        case News.AUTO_APPROVED:
            rule = esc(context.get("rule") or "auto_approve")
            return f":robot_face: {rid}: `{scope}` was approved automatically by the catalog rule “{rule}”."
        case News.EXPIRING:
            extend = " Extend it, or say you are done." if context.get("can_extend") else " Say you are done if you are."
            return f":alarm_clock: {rid}: your access to `{scope}` ends at {when(request.expires_at)}.{extend}"
        case Event.EXTENSION_DENIED:
            reason = f" Reason: {esc(context['reason'])}" if context.get("reason") else ""
            by = mention(context.get("actor"))
            return f":no_entry: {rid}: {by} denied extending `{scope}`; it still ends at {when(request.expires_at)}.{reason}"
        case Event.EXTENSION_FAILED:
            return f":x: {rid}: the extension of `{scope}` could not be issued ({esc(context.get('error'))}); your grant is unchanged."
        case Event.REVIEW_ACKNOWLEDGED | Event.REVIEW_FLAGGED:
            verdict = "acknowledged" if news is Event.REVIEW_ACKNOWLEDGED else "FLAGGED"
            note = f" Note: {esc(context['note'])}" if context.get("note") else ""
            return f":mag: {rid}: {mention(context.get('actor'))} {verdict} your break-glass use of `{scope}`.{note}"
    return f"{rid}: {esc(news)}"


def alert_text(alert: Alert, request_id: str | None, context: dict[str, object]) -> str:
    """The alert channel's line. The core sends IDs and plain text (Vault's error, a reviewer's note): escaped here,
    mentions written here."""
    rid, scope, error = esc(request_id or "—"), esc(context.get("scope")), esc(context.get("error"))
    match alert:
        case Alert.ISSUE_FAILED:
            return f"Issuing {rid} ({scope}) failed: {error}"
        case Alert.BREAK_GLASS:
            return (
                f"BREAK-GLASS {rid}: {mention(context.get('requester'))} took `{scope}` for {esc(context.get('duration'))} "
                f"without approval. An approver must review it within {esc(context.get('review_within'))}."
            )
        case Alert.CREDENTIAL_MISMATCH:
            return (
                f"{rid}: the database names credential {esc(context.get('row'))} but the audit trail recorded "
                f"{esc(context.get('audited'))}; revoking the recorded one. Someone changed the requests table: investigate."
            )
        case Alert.BAD_SEAL:
            return (
                f"{rid}: the seal stored with credential {esc(context.get('accessor'))} does not match the request. "
                "Someone changed the requests table (or the seal key in Vault was replaced): investigate. Vault was "
                "asked whose the credential is before anything was revoked."
            )
        case Alert.REVOKE_FAILED:
            return (
                f"Revoking {rid} ({scope}) failed (attempt {esc(context.get('attempt'))}): {error}. "
                f"Retrying in {esc(context.get('retry_in'))}; Vault's own TTL still ends it."
            )
        case Alert.REPLACED_NOT_REVOKED:
            old = esc(context.get("accessor"))
            return f"Revoking {rid}'s old credential {old} (a new one replaced it) failed: {error}. Its own TTL ends it at the old expiry."
        case Alert.REVIEW_FLAGGED:
            return f"Break-glass {rid} was FLAGGED by {mention(context.get('actor'))} on review: {esc(context.get('note') or 'no note')}"
        case Alert.UNREACHABLE:
            # IDs as the catalog holds them, not mentions: these are the people and channels Slack could not resolve.
            people = context.get("people")
            who = ", ".join(esc(p) for p in people) if isinstance(people, list) else "—"
            text = f"{rid} ({scope}): could not reach {who} ({esc(context.get('why'))})."
            if context.get("nobody"):
                text += " Nobody was reached: fix the catalog's approvers (or invite the bot), then ask the requester to nudge."
            return text
        case Alert.GAVE_UP:
            about = f" about {rid}" if request_id else ""
            return f"A `{esc(context.get('notice'))}` message{about} could not be delivered ({error}); gave up."
        case Alert.ANCHOR_REFUSED:
            return (
                f"Audit trail: the database no longer continues the anchor in Vault ({esc(context.get('why'))}; anchored "
                f"seq {esc(context.get('anchored_seq'))}, database head seq {esc(context.get('head_seq'))}). The bot stopped "
                "anchoring and `jitbot audit verify` fails until an operator restores the trail or re-anchors it "
                "(docs/operations.md, “When the bot refuses to anchor”)."
            )
        case Alert.ANCHOR_DOWN:
            return (
                f"Audit trail: the anchor in Vault has not been written since {esc(context.get('since'))} ({error}). "
                "Until it is, a database insider could change the newest events unnoticed, `/healthz` says "
                "`anchor: down` and `jitbot audit verify` fails. Check JITBOT_AUDIT_ANCHOR and run `jitbot vault sync`, "
                "which checks that the mount is KV v2 and that the bot may write the path."
            )
        case Alert.INBOX_FORGED:
            return (
                f"Inbox row {esc(context.get('entry'))} (`{esc(context.get('task'))}`) has no valid MAC: it was written "
                "into the database, not recorded from a signed Slack request. It was not run. Someone with write access "
                "to the database is forging clicks or commands: investigate (the audit trail has a `rejected` event, "
                "rule `inbox_forged`)."
            )
        case Alert.INBOX_GAVE_UP:
            return (
                f"Inbox row {esc(context.get('entry'))} (`{esc(context.get('task'))}`) was claimed "
                f"{esc(context.get('attempts'))} times without finishing (its work killed or hung the worker each time); "
                "gave up. The click or command it holds did not take effect: ask its sender to repeat it, and check the logs."
            )
        case Alert.AUDIT_STREAM_BEHIND:
            return (
                f"Audit stream `{esc(context.get('sink'))}`: the collector has not taken events since "
                f"{esc(context.get('since'))} ({esc(context.get('behind'))} or more waiting); they are kept and sent, "
                "in order, once it takes them again. Check the collector."
            )
    return esc(context.get("text", alert))


def receipt_text(request: Request, scope: Scope, people: People, command: str) -> str:
    """The requester's confirmation: who can approve, how many approvals, how to cancel."""
    head = f"Request `{request.id}` for `{request.scope}` ({format_duration(request.duration)})"
    if request.starts_at is not None:
        head += f" from {when(request.starts_at)}"  # approved ahead, issued then; undecided by then, it times out
    if request.state is not State.PENDING:
        rule = next((r.name for r in scope.auto_approve if r.name), "auto_approve")
        return f":robot_face: {head} was approved automatically by the catalog rule “{rule}”; your credential comes by DM."
    first = scope.steps[0]
    who = mentions(sorted(people.step_approvers(first, scope, False) - {request.requester})) or "nobody yet"
    steps = ""
    if len(scope.steps) > 1:
        steps = " in steps: " + " → ".join(f"{s.name or 'approval'} ({s.approvals})" for s in scope.steps)
    on_call = allowances.on_call_rule(people, scope, request.requester, request.duration) if not request.starts_at else None
    if on_call is not None:  # who is on call is asked after the ack
        head += f": if you are on call now, the catalog rule “{esc(on_call.name or 'auto_approve')}” approves it and your "
        head += "credential comes by DM; if not, it is"
    return (
        f":outbox_tray: {head} sent to {who}; {request.approval.required} approval(s) needed{steps}. "
        f"I'll DM you when it is decided. The button or `{command} cancel {request.id}` cancels it."
    )


def not_made_text(request_id: str, why: str) -> str:
    """A new request the ack named could not be made after it (a check that needs the database, Vault down)."""
    return f":warning: Request `{request_id}` was not made: {why}"


def unreachable_text(command: str) -> str:
    return (
        "the bot could not reach its database or Vault just now. "
        f"`{command} list` shows whether it was recorded; if not, please ask again in a minute."
    )


def break_glass_text(request: Request, alert_channel: str) -> str:
    """The break-glass answer, given before Vault is called: issuing follows, and a failure comes by DM."""
    if request.state not in (State.APPROVED, State.ACTIVE):
        return f":x: Break-glass {request.id} for `{request.scope}`: {request.state}; nothing was issued."
    told = "The approvers and the alert channel are told" if alert_channel else "The approvers are told"
    until = request.expires_at or request.created_at + request.duration
    return (
        f":rotating_light: Break-glass {request.id}: `{request.scope}` is yours until {when(until)}; the credential "
        f"is being issued and comes by DM (if Vault refuses, the DM says so). {told}, and an approver will review it."
    )


def notice_text(request: Request, approvers: frozenset[str], kind: str) -> str:
    """What approvers read for a reminder, nudge, escalation, review reminder or extension request."""
    who = mentions(sorted(approvers), " ")
    rid, scope = request.id, request.scope
    texts = {
        "reminder": f":bell: {who} reminder: {rid} (<@{request.requester}>, `{scope}`) still waits for your decision.",
        "nudge": f":wave: {who} <@{request.requester}> nudges: {rid} (`{scope}`) still waits for your decision.",
        "escalation": f":arrow_double_up: {who} escalated to you: {rid} (`{scope}`) waited too long; you may approve it now.",
        "review": f":mag: {who} the break-glass review of {rid} (`{scope}`) is still open: acknowledge or flag it.",
        "extension": f":hourglass: {who} <@{request.requester}> asks to extend {rid} (`{scope}`).",
        "break_glass": f":rotating_light: {who} BREAK-GLASS: <@{request.requester}> took `{scope}` ({rid}) without approval.",
    }
    return texts.get(kind, f"{rid}: {kind}")


def credential_text(request: Request, delivery: Delivery) -> str:
    """The credential DM: what was granted and until when, then the kind's own instructions (DM only, never logged)."""
    extended = request.grant is not None and request.grant.extensions > 0
    if request.approvals and not extended:
        how = f"your request for `{request.scope}` was approved by {', '.join(mention(a) for a in request.approvals)}; "
    else:
        how = ""
    lines = [
        f":key: {request.id}: {how}your `{request.scope}` credential is ready: {esc(delivery.summary)}. "
        f"It lives until {when(request.expires_at)} ({format_duration(request.duration)} in all).",
        # The kind's words are plain text: escaped, so a `<` in a hint or a certificate comment is shown, not parsed.
        *(esc(line) for line in delivery.lines),
    ]
    if delivery.code:
        lines.append(f"```{esc(delivery.code)}```")
    return "\n".join(lines)


def form_failed_text(code: str, command: str, scopes: list[str]) -> str:
    """When Slack would not open the request form after the command was acknowledged."""
    example = scopes[0] if scopes else "payments-read"
    listed = ", ".join(f"`{s}`" for s in scopes[:MAX_NAMED]) + (
        f" and {len(scopes) - MAX_NAMED} more" if len(scopes) > MAX_NAMED else ""
    )
    return (
        f":warning: Slack did not open the request form (`{esc(code)}`; it opens only within 3 seconds of the command). "
        f"Type `{command}` again, or ask directly: `{command} &lt;scope&gt; &lt;duration&gt; &lt;reason…&gt;`, "
        f"e.g. `{command} {example} 30m INC-4411 replay refunds`. Scopes you can request: {listed or 'none'}."
    )


def deny_form_failed_text(code: str, request_id: str) -> str:
    """When Slack would not open the Deny-reason form: nothing was decided, and how to try again."""
    return (
        f":warning: Slack did not open the Deny form for {esc(request_id)} (`{esc(code)}`; it opens only within 3 seconds "
        "of the click). Nothing was decided: press Deny again."
    )


def help_text(command: str, scopes: list[str]) -> str:
    return "\n".join(
        [
            f"*{command}* — just-in-time elevation with approval, scoped credentials and an audit trail.",
            f"• `{command}` — open the request form",
            f"• `{command} &lt;scope&gt; &lt;duration&gt; &lt;reason…&gt;` — request elevation, e.g. `{command} payments-read 30m INC-4411 replay refunds`",
            f"• `{command} &lt;scope&gt; &lt;duration&gt; at &lt;HH:MM&gt; &lt;reason…&gt;` — a later start (UTC): approved ahead, issued then",
            f"• `{command} list` — your requests and active grants (approvers: also what waits on you)",
            f"• `{command} cancel &lt;request-id&gt;` — withdraw your pending request",
            f"• `{command} revoke &lt;request-id&gt;` — end a grant now (or cancel your pending request)",
            f"• `{command} extend &lt;request-id&gt; [duration]` — more time on your grant, as the catalog allows",
            f"• `{command} nudge &lt;request-id&gt;` — remind the approvers of your pending request (once per interval)",
            f"• `{command} break-glass &lt;scope&gt; [duration] &lt;reason…&gt;` — emergency access where allowed; reviewed afterwards",
            f"• `{command} reviews` — open break-glass reviews (approvers and auditors)",
            f"• `{command} &lt;scope&gt; for &lt;service&gt; &lt;duration&gt; &lt;reason…&gt;` — a vault_identity scope for a service it lists",
            f"• `{command} ssh-key [public key]` — register your SSH public key (bare: show its fingerprint)",
            f"• `{command} csr [PEM]` — register the certificate signing request pki scopes sign (bare: show it)",
            f"• `{command} audit [--since T] [--until T] [--format csv|jsonl]` — auditors: the audit trail as a file",
            f"• `{command} help` — this text",
            "Durations look like `90s`, `15m`, `1h30m`, `2d`. Times (T) are ISO dates such as `2026-11-01` or ages such as `7d`.",
            f"Scopes you can request: {', '.join(f'`{s}`' for s in scopes) or 'none'}.",
        ]
    )


def step_up_text(request_id: str, url: str, ttl: str) -> str:
    """The private answer to Approve on a step-up scope: the click itself approved nothing."""
    return (
        f":lock: Approving {request_id} needs a fresh sign-in. <{url}|Sign in and approve> "
        f"(this link is yours alone, works once and for {ttl}; your click here approved nothing)."
    )
