"""Granting: issue an approved request's credential, end a grant (revoke or expire), and retry what failed."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from grants import outbox, tickets
from grants.catalog import Scope, revoke_caveat
from grants.credentials import CredentialError, CredentialHandle, CredentialStatus, HoldUsed, IssuedCredential, IssueOrder
from grants.domain import Grant, Request, StaleDecision, State, open_decision
from grants.durations import format_duration
from grants.lifecycle import Event
from grants.outbox import Alert
from grants.usecases.deps import Deps

log = logging.getLogger(__name__)

REVOKE_BACKOFF_MAX = timedelta(minutes=5)
HOLD_RACE_WINDOW = timedelta(minutes=2)  # an issuer that released a credential records it well within this


def order_for(
    request: Request, until: datetime, now: datetime, public_key: str | None = None, csr: str | None = None
) -> IssueOrder:
    """What the kind must issue: exactly the rest of the approved time, for exactly this request (and its service)."""
    return IssueOrder(
        request_id=request.id,
        scope=request.scope,
        requester=request.requester,
        ttl=until - now,
        until=until,
        on_behalf_of=request.on_behalf_of,
        public_key=public_key,
        csr=csr,
    )


def order_of(deps: Deps, request: Request, until: datetime, now: datetime) -> IssueOrder:
    """The order with what the store holds for it: the requester's registered public key or CSR for kinds that certify one."""
    scope = deps.catalog.scopes.get(request.scope)
    key = deps.keys.ssh_key(request.requester) if scope is not None and scope.needs_public_key else None
    csr = deps.keys.csr(request.requester) if scope is not None and scope.needs_csr else None
    return order_for(request, until, now, key, csr)


def issue(deps: Deps, request: Request) -> Request:
    """APPROVED → ACTIVE with the credential delivered, or → FAILED (audited, requester and alert channel told).
    Before its later start nothing is issued: the timer wakes it at the start."""
    scope = deps.catalog.scopes.get(request.scope)
    now = deps.clock.now()
    if request.starts_at is not None and now < request.starts_at:
        return request
    until = min(now + request.duration, request.not_after or now + request.duration)  # never past its shift or window
    try:
        if scope is None:
            raise CredentialError(f"scope `{request.scope}` is no longer in the catalog")
        if until <= now:
            raise CredentialError(f"what allowed it ended at {until:%Y-%m-%d %H:%M:%S} UTC, before it could be issued")
        credential = deps.issuer.issue(order_of(deps, request, until, now), scope)
    except HoldUsed as exc:
        # Two issuers raced (the page's process and the stuck-approval retry): the one that released the credential
        # records it; a failure committed here first would make it revoke its own. Still approved long after the
        # approval, that credential was never recorded (its issuer died), and the request fails as any other.
        current = deps.requests.get(request.id)
        decided = request.approval.decided_at or now
        if current is not None and (current.state is not State.APPROVED or now - decided < HOLD_RACE_WINDOW):
            log.info("another issuer released this approval's credential", extra={"request_id": request.id})
            return current
        return _issue_failed(deps, request, now, exc)
    except CredentialError as exc:
        return _issue_failed(deps, request, now, exc)
    grant = Grant(handle=credential.handle, issued_at=now, expires_at=until, seal=deps.seal(credential.handle, request.id))
    active = request.advance(Event.ISSUED, grant=grant)
    detail = {**credential.facts, "accessor": credential.handle.id, "kind": credential.handle.kind}
    notices = [outbox.changed(request.id), check_of(deps, request.id, credential)]
    approvers = ", ".join(request.approvals) or str(request.decided_by)
    notices += ticket_notes(request, f"access granted until {grant.expires_at:%Y-%m-%d %H:%M:%S} UTC, approved by {approvers}")
    expires = grant.expires_at.isoformat()
    if not deps.commit(request, active, Event.ISSUED, "system", notices=notices, expires_at=expires, **detail):
        # Someone else issued (or ended) this request meanwhile: our credential must not survive.
        try_revoke(deps, credential.handle, request.id)
        current = deps.requests.get(request.id)
        return current if current is not None else request
    deliver_credential(deps, active, credential)
    return active


def _issue_failed(deps: Deps, request: Request, now: datetime, exc: CredentialError) -> Request:
    failed = request.advance(Event.ISSUE_FAILED, ended_at=now, review=None)
    notices = [
        outbox.changed(request.id),
        outbox.told(request.id, Event.ISSUE_FAILED, error=str(exc)),
        outbox.alert(Alert.ISSUE_FAILED, request.id, scope=request.scope, error=str(exc)),
    ]
    deps.commit(request, failed, Event.ISSUE_FAILED, "system", notices=notices, error=str(exc))
    return failed


def issue_approved(deps: Deps, request: Request) -> Request:
    """Issue an approved request; for break-glass, tell the approvers and the alert channel loudly once it exists."""
    active = issue(deps, request)
    scope = deps.catalog.scopes.get(request.scope)
    if active.state is State.ACTIVE and active.break_glass and scope is not None and scope.break_glass is not None:
        glass = scope.break_glass
        deps.enqueue(
            outbox.notice(active.id, deps.people.approvers(scope) - {active.requester}, "break_glass"),
            outbox.alert(
                Alert.BREAK_GLASS,
                active.id,
                requester=active.requester,
                scope=active.scope,
                duration=format_duration(active.duration),
                review_within=str(glass.review_within),
            ),
        )
    return active


def check_of(deps: Deps, request_id: str, credential: IssuedCredential, replaced: int = 0) -> outbox.Notice:
    """The check that replaces `credential` when its DM does not arrive within `deps.deliver_within`."""
    return outbox.credential_check(request_id, credential.handle.id, deps.deliver_within, credential.wrapping, replaced)


def deliver_credential(deps: Deps, request: Request, credential: IssuedCredential) -> bool:
    """Send the credential straight away (it cannot wait in the outbox: no secret at rest), then record that it
    arrived. Undelivered (Slack refused, or the process died first), its check comes due `deps.deliver_within`
    after the commit and `reissue` replaces it."""
    try:
        deps.notifier.deliver_credential(request, credential)
    except Exception:
        log.exception("credential delivery failed; its check replaces it", extra={"request_id": request.id})
        return False
    deps.outbox.settle_credential(request.id, credential.handle.id, deps.clock.now())
    return True


def reissue(deps: Deps, request_id: str, check: dict[str, Any]) -> None:
    """A credential check came due unsettled: its DM may never have arrived (Slack refused, the process died).

    With a wrapping token (kept by accessor): still there, nobody unwrapped it, so it is revoked with the credential
    it wraps and a fresh one is issued for the rest of the time and delivered; gone before its expiry, the requester
    unwrapped it, so nothing new is sent. Without one (or past its expiry), the credential is replaced. Raises
    CredentialError when Vault refuses or cannot say (the outbox retries)."""
    accessor = str(check["accessor"])
    request = deps.requests.get(request_id)
    now = deps.clock.now()
    if request is None or request.state is not State.ACTIVE or request.grant is None:
        return  # ended meanwhile: nothing to deliver
    grant = request.grant
    if grant.handle.id != accessor or now >= grant.expires_at:
        return  # replaced since (extension, an earlier reissue), or over anyway
    wrap = str(check["wrap"]) if check.get("wrap") else None
    if wrap is not None:
        status = deps.issuer.wrap_status(wrap)
        if status is CredentialStatus.UNKNOWN:
            raise CredentialError(f"Vault could not say whether {request.id}'s credential was unwrapped; trying again")
        if status is CredentialStatus.GONE and now < datetime.fromisoformat(str(check["wrap_until"])):
            log.info("the undelivered-looking credential was unwrapped: nothing to replace", extra={"request_id": request.id})
            return
    scope = deps.scope(request.scope)
    credential = deps.issuer.extend(grant.handle, order_of(deps, request, grant.expires_at, now), scope)
    fresh = request.with_grant(handle=credential.handle, seal=deps.seal(credential.handle, request.id))
    reissued = request.advance(Event.REISSUED, grant=fresh)
    notices = [check_of(deps, request.id, credential, int(check.get("replaced", 0)) + 1)]
    detail: dict[str, Any] = {"old_accessor": accessor, "accessor": credential.handle.id, "why": "credential_undelivered"}
    if not deps.commit(request, reissued, Event.REISSUED, "system", notices=notices, **detail):
        if credential.handle != grant.handle:
            try_revoke(deps, credential.handle, request.id)
        raise CredentialError(f"{request.id} changed while replacing its undelivered credential; trying again")
    if wrap is not None:
        # The old DM may still arrive (a slow Slack): its wrapping token must then unwrap nothing.
        try:
            deps.issuer.revoke_wrap(wrap)
        except CredentialError:
            log.exception("could not revoke a replaced wrapping token; its TTL ends it", extra={"request_id": request.id})
    if credential.handle != grant.handle:
        revoke_replaced(deps, reissued, grant.handle, grant.seal)
    deliver_credential(deps, reissued, credential)


def end(deps: Deps, request: Request, event: Event, actor: str, **cause: Any) -> Request:
    """ACTIVE → EXPIRED or REVOKED: revoke first, record after; a failed revoke stays active and is retried. `cause`
    (why `system` ended it, e.g. its ticket closed) goes into the audit event."""
    assert request.grant is not None
    handle, proven = trusted_handle(deps, request)
    now = deps.clock.now()
    try:
        deps.issuer.revoke(handle, request.id, proven)
    except CredentialError as exc:
        return revoke_failed(deps, request, event, actor, exc)
    approval = request.with_approval(decided_by=actor) if event is Event.REVOKED else request.approval
    ended = request.advance(event, ended_at=now, approval=approval)
    detail: dict[str, Any] = {"accessor": handle.id, **cause}
    if event is Event.EXPIRED:
        detail["lag_seconds"] = round((now - request.grant.expires_at).total_seconds(), 3)
    why = {"cause": str(cause["cause"])} if "cause" in cause else {}  # the DM says why jitbot itself ended it
    notices = [outbox.changed(request.id), outbox.told(request.id, event, actor=actor, **why, **_caveat(handle))]
    notices += ticket_notes(request, ended_note(event, actor, cause))
    if not deps.commit(request, ended, event, actor, notices=notices, **detail):
        current = deps.requests.get(request.id)
        if current is not None and current.state is State.ACTIVE and current.grant is not None:
            # Lost to a change that kept it active (a warning, an extension): end it as it is now.
            return end(deps, current, event, actor, **cause)
        return current if current is not None else request  # ended concurrently: one event only, theirs
    return ended


def require_current(deps: Deps, request: Request, shown_for: str, actor: str, action: str) -> None:
    """A decision button names the decision it was shown for; a click on any other (a replayed Approve landing on
    a later extension, an old message) is refused and audited instead of deciding what waits now. Callers check
    the row their CAS compares with, so a change between this check and the write loses the race, never decides."""
    current = open_decision(request)
    if current is not None and current != shown_for:
        deps.reject(actor, action, "stale_decision", request)
        what = "an extension" if current.startswith("e") else "its approval"
        raise StaleDecision(
            f"This message is out of date: {request.id} now waits for {what}. Use the newest message about it.",
            request_id=request.id,
        )


def _caveat(handle: CredentialHandle) -> dict[str, str]:
    """What the requester must hear about a revoke this kind cannot make complete (open SSH sessions survive)."""
    caveat = revoke_caveat(handle.kind)
    return {"caveat": caveat} if caveat else {}


def trusted_handle(deps: Deps, request: Request) -> tuple[CredentialHandle, bool]:
    """The credential to revoke is the one the hash-chained trail recorded, not whatever the row names now: an
    insider who swaps the row's accessor must not turn the bot into a revocation oracle for someone else's token.
    Also whether the row's seal proves it is this request's credential (then the kind asks Vault nothing but the
    revoke); unproven, the kind checks the token's own metadata as before."""
    assert request.grant is not None
    row = request.grant.handle
    audited = deps.trail.audited_credential(request.id)
    if audited is None or audited == row.id:
        return row, proven(deps, request, row, request.grant.seal)
    deps.record(request, Event.REJECTED, "system", action="revoke", rule="credential_mismatch", row=row.id, audited=audited)
    deps.enqueue(outbox.alert(Alert.CREDENTIAL_MISMATCH, request.id, row=row.id, audited=audited))
    return CredentialHandle(row.kind, audited), False  # the row's seal is not this handle's: the kind looks it up


def proven(deps: Deps, request: Request, handle: CredentialHandle, seal: str | None) -> bool:
    """True when `seal` proves `handle` is `request`'s credential. No seal (a row from before seals, a bot without the
    key) is not proof, and the kind looks the credential up as it always did. A seal that does not match is a
    security failure (someone changed the row, e.g. copied another grant's handle and seal): audited and alerted,
    and it proves nothing, so the kind's lookup decides, which never revokes another request's credential."""
    if seal is None or deps.sealer is None:
        return False
    if deps.sealer.check(handle, request.id, seal):
        return True
    log.error("a credential's seal does not match its request", extra={"request_id": request.id})
    deps.record(request, Event.REJECTED, "system", action="revoke", rule="credential_seal", accessor=handle.id)
    deps.enqueue(outbox.alert(Alert.BAD_SEAL, request.id, accessor=handle.id))
    return False


def overdue_end(deps: Deps, request: Request) -> tuple[Event, str]:
    """How a grant past its end ends: expired, by `system`; but the retry of an early revoke that failed (Vault was
    away) still ends it as revoked, by whoever revoked it, so the trail keeps who ended the access."""
    if request.grant is not None and request.grant.revoke_attempts:
        last = deps.trail.last_detail(request.id, Event.REVOKE_FAILED)
        if last is not None and last[1].get("ends_as") == Event.REVOKED.value and last[1].get("ended_by"):
            return Event.REVOKED, str(last[1]["ended_by"])
    return Event.EXPIRED, "system"


def revoke_failed(deps: Deps, request: Request, event: Event, actor: str, exc: CredentialError) -> Request:
    assert request.grant is not None
    attempts = request.grant.revoke_attempts + 1
    delay = min(timedelta(seconds=5 * 2 ** (attempts - 1)), REVOKE_BACKOFF_MAX)
    changes: dict[str, Any] = {"revoke_attempts": attempts}
    now = deps.clock.now()
    if now < request.grant.expires_at:
        changes["expires_at"] = now  # an early revoke that failed: the grant ends at the next attempt
    updated = request.advance(Event.REVOKE_FAILED, grant=request.with_grant(**changes))
    # The retry is a wake-up after the backoff: revocation is re-attempted from the database state.
    detail = {"accessor": request.grant.handle.id, "attempt": attempts, "error": str(exc), "retry_in": format_duration(delay),
              "ends_as": event.value, "ended_by": actor}  # fmt: skip
    alert = outbox.alert(
        Alert.REVOKE_FAILED, request.id, scope=request.scope, attempt=attempts, error=str(exc), retry_in=format_duration(delay)
    )
    deps.commit(request, updated, Event.REVOKE_FAILED, actor, wake=delay, notices=[alert], **detail)
    return updated


def try_revoke(deps: Deps, handle: CredentialHandle, request_id: str) -> None:
    try:
        deps.issuer.revoke(handle, request_id)
    except CredentialError:
        log.exception("could not revoke a surplus credential; Vault's TTL will end it")


def revoke_replaced(deps: Deps, request: Request, handle: CredentialHandle, seal: str | None = None) -> None:
    """The credential an extension replaced must end now; if Vault refuses, audit and alert (its TTL still ends it)."""
    try:
        deps.issuer.revoke(handle, request.id, proven(deps, request, handle, seal))
    except CredentialError as exc:
        deps.record(request, Event.REVOKE_FAILED, "system", accessor=handle.id, replaced=True, error=str(exc))
        deps.enqueue(outbox.alert(Alert.REPLACED_NOT_REVOKED, request.id, accessor=handle.id, error=str(exc)))


def ended_note(event: Event, actor: str, cause: dict[str, Any]) -> str:
    why = f" ({str(cause['cause']).replace('_', ' ')})" if "cause" in cause else ""
    return f"access {'expired' if event is Event.EXPIRED else f'revoked by {actor}'}{why}"


def ticket_notes(request: Request, text: str) -> list[outbox.Notice]:
    """The comment for the request's ticket, queued with the change it tells of (none without a ticket)."""
    return [outbox.ticket_note(request.id, text)] if request.ticket is not None else []


def comment(deps: Deps, request: Request, text: str) -> None:
    """Tell the request's ticket what it justified; raises TrackerUnavailable (the outbox retries, then gives up)."""
    if request.ticket is None:
        return
    name, key = request.ticket.split(":", 1)
    tracker = deps.trackers.get(name)
    if tracker is None:
        raise tickets.TrackerUnavailable(f"no adapter for tracker {name} (its token is not set)")
    tracker.comment(key, f"jitbot {request.id}: {text}")


def release_hold(deps: Deps, scope: Scope | None, request: Request) -> None:
    """A vault-enforced request that ended undecided (denied, cancelled, timed out, never stored): its pending
    control-group request is ended too, or its KV entry would stay forever. A scope gone from the catalog may have
    been vault-enforced: its hold is looked for too (nothing there is fine)."""
    if (scope is None or scope.vault_enforced) and deps.control_groups is not None:
        try:
            deps.control_groups.discard(request.id)
        except CredentialError:
            log.warning("could not end the control-group request of %s; its TTL will", request.id)
