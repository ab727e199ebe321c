"""Asking for elevation: a normal request (maybe auto-approved by a catalog rule) and break-glass."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from grants import allowances, deadlines, guards, inputs, outbox, tickets
from grants.catalog import AutoApprove, Scope
from grants.context_catalog import cited_ticket
from grants.credentials import CredentialError
from grants.csr import parse_csr
from grants.domain import (
    AlreadyDecided,
    AlreadyOpen,
    Approval,
    AskNormally,
    CsrMissing,
    ExtensionOffered,
    InvalidRequest,
    Request,
    Review,
    SshKeyMissing,
    State,
    new_request_id,
)
from grants.durations import format_duration
from grants.lifecycle import OPEN, Event
from grants.oncall import Shift
from grants.usecases import granting
from grants.usecases.deps import Deps

log = logging.getLogger(__name__)


def plan(
    deps: Deps,
    requester: str,
    scope_name: str,
    duration_text: str | None,
    reason: str,
    on_behalf_of: str | None = None,
    request_id: str | None = None,
    start_text: str | None = None,
) -> Request:
    """The checks a new request meets that need nothing but the catalog (scope, requester, service, duration, reason,
    start) and the request they would make, not stored: what the ack can promise before the use case runs. APPROVED
    when a catalog rule approves it without asking anyone (an on-call rule asks PagerDuty: after the ack). Raises the
    refusal `request` would, without auditing it."""
    new = draft(deps, requester, scope_name, duration_text, reason, on_behalf_of, request_id, start_text)
    scope, now = deps.scope(scope_name), deps.clock.now()
    if new.starts_at is not None or allowances.auto_grant(deps.people, scope, requester, new.duration, _off_call, now) is None:
        return new
    return new.advance(Event.APPROVED, approval=new.with_approval(decided_by="system", decided_at=new.created_at))


def _off_call(schedule: str) -> dict[str, Any]:
    return {}  # nobody: the ack asks no schedule


def draft(
    deps: Deps,
    requester: str,
    scope_name: str,
    duration_text: str | None,
    reason: str,
    on_behalf_of: str | None = None,
    request_id: str | None = None,
    start_text: str | None = None,
) -> Request:
    """The pending request the catalog-only checks allow (see `plan`)."""
    scope = deps.scope(scope_name)
    guards.require_requester(deps.people, scope_name, scope, requester)
    subject = service_subject(scope_name, scope, on_behalf_of)
    duration = inputs.checked_duration(scope_name, scope, duration_text)
    reason = inputs.checked_reason(scope_name, scope, reason)
    start = inputs.checked_start(start_text, deps.clock.now()) if start_text else None
    new = replace(_new(deps, requester, scope_name, scope, duration, reason, request_id), on_behalf_of=subject)
    if start is not None:
        # The window is [start, start + duration]: a late issue (the bot was down) still ends with it, and an
        # approval that did not come before the start expires with it.
        new = replace(new, starts_at=start, pending_until=start, not_after=start + duration)
    return new


def request(
    deps: Deps,
    requester: str,
    scope_name: str,
    duration_text: str | None,
    reason: str,
    on_behalf_of: str | None = None,
    defer_issue: bool = False,
    start_text: str | None = None,
    request_id: str | None = None,
) -> Request:
    """A new request, offered to the first step's approvers; one a catalog rule auto-approves is issued at once,
    or (`defer_issue`) left APPROVED for `granting.issue_approved` so that Slack is acknowledged before Vault.
    With a later start (`start_text`) it is approved ahead and issued at the start; undecided by then, it times out.

    `request_id` was named in the ack already (the request was recorded in the inbox): run again after a crash, the
    request that exists under it is carried on from where it stopped, never made twice."""
    existing = deps.requests.get(request_id) if request_id is not None else None
    if existing is not None:
        if existing.requester != requester:  # an ID is random and unguessable: a clash is a forged row
            raise InvalidRequest(f"{request_id} is someone else's request.", field="scope")
        return carry_on(deps, existing, defer_issue)
    scope = deps.scope(scope_name)
    try:
        guards.require_requester(deps.people, scope_name, scope, requester)
    except InvalidRequest:
        deps.reject(requester, "request", "not_a_requester", None, scope=scope_name)  # probing is audited too
        raise
    require_budget(deps, requester, scope_name)
    checked_service(deps, requester, scope_name, scope, on_behalf_of)
    require_ssh_key(deps, requester, scope_name, scope)
    require_csr(deps, requester, scope_name, scope)
    new = draft(deps, requester, scope_name, duration_text, reason, on_behalf_of, request_id, start_text)
    refuse_duplicate(deps, requester, scope_name, scope)
    at = new.starts_at or deps.clock.now()
    ticket, evidence, window_end = require_ticket(deps, requester, scope_name, scope, new.reason, at)
    new = replace(new, ticket=ticket)
    if window_end is not None:  # the ticket's change window bounds the grant (issuing caps it there)
        new = replace(new, not_after=min(filter(None, [new.not_after, window_end])))
    # A shift holds now, not at a later start: on-call rules never approve ahead.
    now = deps.clock.now()
    found = allowances.auto_grant(deps.people, scope, requester, new.duration, deps.shifts, now) if not new.starts_at else None
    rule, shift = found if found is not None else (None, None)
    if rule is not None and shift is not None and rule.end_with_shift and shift.end is not None:
        # The grant never outlives the shift that allowed it (issuing caps it again, at the moment it issues).
        left = timedelta(seconds=math.ceil((shift.end - now).total_seconds()))  # durations are whole seconds
        new = replace(new, not_after=shift.end, duration=min(new.duration, left))
    approvers = deps.people.approvers(scope) - {requester}
    first_step = deps.people.step_approvers(scope.steps[0], scope, False) - {requester}
    opened = [] if rule is not None else [outbox.opened(new.id, first_step)]
    opened += granting.ticket_notes(new, f"requested {new.scope} for {format_duration(new.duration)} by Slack user {requester}")
    if scope.vault_enforced:
        hold_in_vault(deps, new, scope, approvers)
    try:
        create(deps, new, scope, requester, notices=opened, **evidence, **request_detail(new, scope, approvers))
    except Exception:
        # Not stored (refused, or the store failed): the hold goes too, so nothing leaks and a retry of the same
        # request ID can hold it again (KV check-and-set 0). A row that did land keeps its hold.
        if scope.vault_enforced and not _stored(deps, new.id):
            granting.release_hold(deps, scope, new)
        raise
    return approve_by_rule(deps, new, rule, shift, defer_issue) if rule is not None else new


def carry_on(deps: Deps, request: Request, defer_issue: bool) -> Request:
    """A new request found stored when its inbox row runs again (a crash after its creation): approved by its catalog
    rule if one covers it and the crash came first, then issued unless `defer_issue`."""
    if request.state is State.PENDING and request.starts_at is None and not request.approval.given:
        scope = deps.scope(request.scope)
        found = allowances.auto_grant(deps.people, scope, request.requester, request.duration, deps.shifts, deps.clock.now())
        if found is not None:
            return approve_by_rule(deps, request, *found, defer_issue)
    if request.state is State.APPROVED and not defer_issue:
        return granting.issue_approved(deps, request)
    return request


def approve_by_rule(deps: Deps, new: Request, rule: AutoApprove, shift: Shift | None, defer_issue: bool) -> Request:
    # Policy as data: the rule that fired is recorded, and `system` is the approver of record.
    approved = new.advance(Event.APPROVED, approval=new.with_approval(decided_by="system", decided_at=deps.clock.now()))
    notices = [outbox.told(new.id, outbox.News.AUTO_APPROVED, rule=rule.name)]
    evidence: dict[str, Any] = {"on_call": shift.evidence()} if shift is not None else {}
    if not deps.commit(
        new, approved, Event.APPROVED, "system", notices=notices, auto_approve=rule.name or "auto_approve", approvers=[],
        **evidence,
    ):  # fmt: skip
        current = deps.requests.get(new.id)
        return current if current is not None else new
    return approved if defer_issue else granting.issue_approved(deps, approved)


def break_glass(
    deps: Deps, requester: str, scope_name: str, duration_text: str | None, reason: str, defer_issue: bool = False
) -> Request:
    """Issue at once for people the catalog allows; approvers are told loudly and must review afterwards.
    With `defer_issue` the request is left APPROVED for `granting.issue_approved`, so Slack is answered first."""
    scope = deps.scope(scope_name)
    glass = scope.break_glass
    if glass is None or not deps.people.in_rule(glass.requesters, requester):
        # Trying to bypass approval without the right to is a security refusal: audited.
        deps.reject(requester, "break_glass", "not_break_glass_eligible", None, scope=scope_name)
        raise AskNormally(f"Break-glass is not available to you for `{scope_name}`.", field="scope", scope=scope_name)
    require_budget(deps, requester, scope_name)
    duration = inputs.checked_duration(scope_name, scope, duration_text, default=glass.max_duration)
    if duration > glass.max_duration:
        raise InvalidRequest(f"Break-glass on `{scope_name}` is capped at {glass.max_duration}.", field="duration")
    if not reason.strip():
        raise InvalidRequest("Break-glass always needs a reason: say what is on fire.", field="reason")
    reason = inputs.checked_reason(scope_name, scope, reason)
    require_ssh_key(deps, requester, scope_name, scope)
    require_csr(deps, requester, scope_name, scope)
    refuse_duplicate(deps, requester, scope_name, scope)
    now = deps.clock.now()
    new = _new(deps, requester, scope_name, scope, duration, reason)
    new = replace(new, break_glass=True, review=Review("open", now + glass.review_within))
    approvers = deps.people.approvers(scope) - {requester}
    create(deps, new, scope, requester, [], break_glass=True, **request_detail(new, scope, approvers))
    approved = new.advance(Event.APPROVED, approval=new.with_approval(decided_by="system", decided_at=now))
    deps.commit(new, approved, Event.APPROVED, "system", break_glass=True, review_within=str(glass.review_within))
    return approved if defer_issue else granting.issue_approved(deps, approved)


def hold_in_vault(deps: Deps, new: Request, scope: Scope, approvers: frozenset[str]) -> None:
    """A vault-enforced request starts as Vault's pending control-group request: the bot's token gets nothing more, and
    only the approvers' own identities release it. An approver Vault would not count is named, never skipped."""
    gates = deps.control_groups
    if gates is None:
        raise InvalidRequest(f"`{new.scope}` is enforced by Vault, but this bot has no control groups configured.", field="scope")
    try:
        missing = gates.missing_approvers(new.scope, sorted(approvers))
        if missing:
            deps.reject(new.requester, "request", "approver_not_in_vault", None, scope=new.scope)
            raise InvalidRequest(
                f"`{new.scope}` is approved in Vault, and Vault does not know these approvers yet: {', '.join(missing)}. "
                "Ask a Vault operator to link each to their Vault entity (an alias named by the Slack user ID) and to run "
                "`jitbot vault sync`, then ask again.",
                field="scope",
            )
        now = deps.clock.now()
        gates.open(granting.order_of(deps, new, now + new.duration, now), scope)  # with the key or CSR it signs
    except CredentialError as exc:
        raise InvalidRequest(f"Vault could not hold `{new.scope}` for its approvers: {exc}. Nothing was requested.") from None


def require_ticket(
    deps: Deps, requester: str, scope_name: str, scope: Scope, reason: str, at: datetime
) -> tuple[str | None, dict[str, Any], datetime | None]:
    """The ticket the reason cites, checked against the scope's rule for a grant starting `at`: (`TRACKER:KEY`, its
    evidence for the audit event, the end of its change window when the rule bounds the grant by it). Missing, closed,
    not assigned or outside its window as required is refused and audited; so is a tracker that cannot be asked when
    the ticket is required (fail closed: an unverified ticket justifies nothing)."""
    rule = scope.ticket
    if rule is None:
        return None, {}, None
    kind = deps.catalog.settings.trackers[rule.tracker].kind
    key = cited_ticket(kind, reason)
    if key is None:
        if rule.required:
            raise InvalidRequest(tickets.missing_citation(scope_name, rule.tracker, kind), field="reason")
        return None, {}, None
    tracker = deps.trackers.get(rule.tracker)
    try:
        if tracker is None:
            raise tickets.TrackerUnavailable(f"JITBOT_TRACKER_{rule.tracker.upper()}_TOKEN is not set")
        ticket = tracker.ticket(key)
    except tickets.TrackerUnavailable as exc:
        log.warning("tracker %s unavailable for %s: %s", rule.tracker, key, exc)
        if not rule.required:
            return None, {"ticket": {"tracker": rule.tracker, "key": key, "checked": False}}, None
        deps.reject(requester, "request", "tracker_unavailable", None, scope=scope_name)
        raise InvalidRequest(
            f"{rule.tracker} cannot be asked about {tickets.shown(kind, key)} right now ({exc}), and `{scope_name}` needs "
            "a checked ticket, so nothing was requested. Try again in a few minutes.",
            field="reason",
        ) from None
    account = deps.catalog.settings.trackers[rule.tracker].accounts.get(requester)
    refused = tickets.refusal(rule, kind, key, ticket, account, at)
    if refused is not None or ticket is None:
        deps.reject(requester, "request", refused.rule if refused else "ticket_missing", None, scope=scope_name)
        raise InvalidRequest(refused.text if refused else "", field="reason")
    bound = ticket.window_end if rule.within_window else None
    return f"{rule.tracker}:{ticket.key}", {"ticket": ticket.evidence(rule.tracker)}, bound


def _stored(deps: Deps, request_id: str) -> bool:
    try:
        return deps.requests.get(request_id) is not None
    except Exception:
        return False


def create(deps: Deps, new: Request, scope: Scope, requester: str, notices: list[outbox.Notice], **detail: Any) -> None:
    try:
        deps.commit(None, new, Event.REQUESTED, requester, notices=notices, **detail)
    except AlreadyOpen:
        # A concurrent twin got in first (the database refused ours): answer as if we had seen it before.
        refuse_duplicate(deps, requester, new.scope, scope)
        raise


def require_budget(deps: Deps, requester: str, scope_name: str) -> None:
    """A per-person budget of new requests: nobody can flood the approvers by asking and cancelling in a loop."""
    settings = deps.catalog.settings
    if deps.requests.count_requests(requester, deps.clock.now() - settings.request_window) >= settings.request_budget:
        deps.reject(requester, "request", "rate_limited", None, scope=scope_name)
        raise InvalidRequest(
            f"You have asked for access {settings.request_budget} times in the last {settings.request_window}; "
            "that is the limit. Use what you asked for, or wait a few minutes and ask again.",
            field="scope",
        )


def checked_service(deps: Deps, requester: str, scope_name: str, scope: Scope, service: str | None) -> str | None:
    """`service_subject`, with a service the scope does not list audited (an attempt to widen a grant)."""
    try:
        return service_subject(scope_name, scope, service)
    except AskNormally:
        raise
    except InvalidRequest:
        deps.reject(requester, "request_on_behalf", "service_not_listed", None, scope=scope_name)
        raise


def service_subject(scope_name: str, scope: Scope, service: str | None) -> str | None:
    """The `entity:NAME` a request is on behalf of: only for vault_identity scopes, only a service the scope lists."""
    if service is None:
        return None
    subject = service if service.startswith("entity:") else f"entity:{service}"
    if not scope.services:
        raise AskNormally(
            f"`{scope_name}` cannot be requested for a service; only vault_identity scopes that list services can.",
            field="scope",
            scope=scope_name,
        )
    if subject not in scope.services:
        listed = ", ".join(f"`{s.removeprefix('entity:')}`" for s in scope.services)
        raise InvalidRequest(f"`{scope_name}` cannot be requested for `{service}`; its services are {listed}.", field="scope")
    return subject


def require_ssh_key(deps: Deps, requester: str, scope_name: str, scope: Scope) -> None:
    """A kind that certifies the requester's registered key (ssh) has nothing to sign without one."""
    if scope.needs_public_key and deps.keys.ssh_key(requester) is None:
        raise SshKeyMissing(
            f"`{scope_name}` gives an SSH certificate for your public key, and you have none registered.", field="public_key"
        )


def require_csr(deps: Deps, requester: str, scope_name: str, scope: Scope) -> None:
    """A kind that signs the requester's registered CSR (pki) needs one this scope would sign: refused before asking."""
    if not scope.needs_csr:
        return
    text = deps.keys.csr(requester)
    if text is None:
        raise CsrMissing(
            f"`{scope_name}` gives a client certificate for your own CSR, and you have none registered.", field="csr"
        )
    problems = scope.csr_problems(parse_csr(text), requester)
    if problems:
        raise CsrMissing(f"`{scope_name}` cannot sign your registered CSR: {', '.join(problems)}.", field="csr")


def refuse_duplicate(deps: Deps, requester: str, scope_name: str, scope: Scope) -> None:
    for open_request in deps.requests.find(states=OPEN, requester=requester):
        if open_request.scope != scope_name:
            continue
        if open_request.state is State.ACTIVE and allowances.extension_room(scope, open_request):
            raise ExtensionOffered(
                f"You already hold `{scope_name}` ({open_request.id}) until {open_request.expires_at:%Y-%m-%d %H:%M:%S} UTC.",
                request_id=open_request.id,
            )
        raise AlreadyOpen(
            f"You already have {open_request.id} for `{scope_name}` ({open_request.state}).",
            field="scope",
            request_id=open_request.id,
        )


def _new(
    deps: Deps, requester: str, scope_name: str, scope: Scope, duration: timedelta, reason: str, request_id: str | None = None
) -> Request:
    now = deps.clock.now()
    return Request(
        id=request_id or new_request_id(),
        scope=scope_name,
        requester=requester,
        duration=duration,
        reason=reason,
        state=State.PENDING,
        created_at=now,
        pending_until=now + deps.catalog.settings.pending_timeout,
        approval=Approval(required=scope.approvals_needed),
    )


def request_detail(request: Request, scope: Scope, approvers: frozenset[str]) -> dict[str, Any]:
    on_behalf = {"on_behalf_of": request.on_behalf_of} if request.on_behalf_of else {}
    if request.starts_at is not None:
        on_behalf["starts_at"] = request.starts_at.isoformat()
    return on_behalf | {
        "duration": format_duration(request.duration),
        "duration_seconds": int(request.duration.total_seconds()),
        "reason": request.reason,
        "approvers": sorted(approvers),
        "approvals_required": scope.approvals_needed,
        "steps": [{"name": s.name, "approvals": s.approvals} for s in scope.steps],
    }


def nudge(deps: Deps, request_id: str, actor: str) -> Request:
    """The requester reminds the waiting approvers, at most once per reminder interval."""
    request = deps.load(request_id)
    deps.guard(request, actor, "nudge", partial(guards.require_requester_of, request, actor, "nudge"))
    scope = deps.scope(request.scope)
    if request.state is not State.PENDING:
        raise AlreadyDecided(f"{request.id} is {request.state}; only a pending request can be nudged.")
    now, interval, last = deps.clock.now(), deadlines.nudge_interval(scope), request.approval.nudged_at
    if last is not None and now - last < interval:
        again = last + interval
        raise InvalidRequest(f"You nudged {request.id} already; you can nudge again after {again:%H:%M} UTC.", field="nudge")
    updated = request.advance(Event.NUDGED, approval=request.with_approval(nudged_at=now))
    deps.commit(
        request,
        updated,
        Event.NUDGED,
        actor,
        notices=[outbox.notice(request.id, deps.waiting_approvers(scope, updated), "nudge")],
    )
    return updated
