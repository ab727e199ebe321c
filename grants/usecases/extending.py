"""Extending an active grant: asked by its requester, decided by an approver of the scope when the catalog says so."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

from grants import allowances, guards, inputs, outbox
from grants.catalog import Scope
from grants.credentials import CredentialError
from grants.domain import AlreadyDecided, InvalidRequest, PendingExtension, Request, State
from grants.durations import format_duration
from grants.lifecycle import Event
from grants.usecases import granting
from grants.usecases.deps import Deps


def extend(deps: Deps, request_id: str, actor: str, duration_text: str | None = None) -> Request:
    """Ask for more time on an active grant: at once, or after one approver agrees, per the catalog."""
    request = deps.load(request_id)
    deps.guard(request, actor, "extend", partial(guards.require_requester_of, request, actor, "extend"))
    scope = deps.scope(request.scope)
    if request.state is not State.ACTIVE:
        raise AlreadyDecided(f"{request.id} is {request.state}; only an active grant can be extended.")
    if request.extension is not None:
        raise AlreadyDecided(f"An extension of {request.id} already waits for an approver.")
    added = inputs.checked_extension(scope, request, duration_text)
    if request.not_after is not None and request.grant is not None and request.grant.expires_at + added > request.not_after:
        # The shift (or window) that allowed the grant bounds it: more time would outlive what justified it.
        raise InvalidRequest(
            f"{request.id} ends with the shift or window that allowed it, at {request.not_after:%Y-%m-%d %H:%M} UTC; "
            "it cannot be extended past that. Ask anew for more time.",
            field="duration",
        )
    if scope.extension_requires_approval or beyond_auto_cap(deps, scope, request, added):
        # The ask is numbered by the version it creates: a button shown for a denied or failed ask never matches a later one.
        updated = request.advance(Event.EXTENSION_REQUESTED, extension=PendingExtension(added, number=request.version + 1))
        approvers = deps.people.approvers(scope) - {request.requester}
        notices = [outbox.notice(request.id, approvers, "extension")]
        deps.commit(request, updated, Event.EXTENSION_REQUESTED, actor, notices=notices, added=format_duration(added))
        return updated
    return apply(deps, request, added, actor)  # no approval needed: the requester is the actor


def beyond_auto_cap(deps: Deps, scope: Scope, request: Request, added: timedelta) -> bool:
    """An auto-approved grant was approved by a rule, up to the rule's cap: time past that cap needs a human, or
    self-extension would turn a 2 h rule into an 8 h grant nobody approved."""
    if request.decided_by != "system" or request.break_glass:
        return False
    duration = request.duration + added
    return allowances.auto_rule(deps.people, scope, request.requester, duration, deps.shifts, deps.clock.now()) is None


def has_pending_extension(request: Request) -> bool:
    return request.state is State.ACTIVE and request.extension is not None


def approve(deps: Deps, request_id: str, actor: str, shown_for: str) -> Request:
    """Approve the extension ask the button was shown for, and only that one: `apply` writes by CAS on this very
    row, so an ask denied and asked again between the click and the write is never decided by the old button."""
    request = deps.load(request_id)
    scope = deps.scope(request.scope)
    check = partial(guards.require_can_decide_extension, deps.people, scope, request, actor)
    deps.guard(request, actor, "approve_extension", check)
    granting.require_current(deps, request, shown_for, actor, "approve")
    if request.extension is None or request.state is not State.ACTIVE:
        raise AlreadyDecided(f"{request.id} has no extension waiting for a decision.")
    return apply(deps, request, request.extension.added, actor)


def deny(deps: Deps, request_id: str, actor: str, shown_for: str, reason: str = "") -> Request:
    while True:
        request = deps.load(request_id)
        scope = deps.scope(request.scope)
        deps.guard(request, actor, "deny", partial(guards.require_can_decide_extension, deps.people, scope, request, actor))
        granting.require_current(deps, request, shown_for, actor, "deny")  # checked again after a lost race
        if request.extension is None or request.state is not State.ACTIVE:
            raise AlreadyDecided(f"{request.id} has no extension waiting for a decision.")
        updated = request.advance(Event.EXTENSION_DENIED, extension=None)
        notices = [outbox.told(request.id, Event.EXTENSION_DENIED, reason=reason, actor=actor)]
        if deps.commit(request, updated, Event.EXTENSION_DENIED, actor, notices=notices, reason=reason):
            return updated


def apply(deps: Deps, request: Request, added: timedelta, actor: str) -> Request:
    """A token's explicit max TTL cannot grow, so an extension is (for most kinds) a new credential for the rest
    of the time; the old one is revoked once the new one is recorded."""
    scope = deps.scope(request.scope)
    now = deps.clock.now()
    assert request.grant is not None
    old = request.grant.handle
    new_expiry = request.grant.expires_at + added
    try:
        order = replace(granting.order_of(deps, request, new_expiry, now), extends_by=added)
        credential = deps.issuer.extend(old, order, scope)
    except CredentialError as exc:
        updated = request.advance(Event.EXTENSION_FAILED, extension=None)
        notices = [outbox.told(request.id, Event.EXTENSION_FAILED, error=str(exc))]
        deps.commit(request, updated, Event.EXTENSION_FAILED, "system", notices=notices, error=str(exc))
        return updated
    grant = request.with_grant(
        handle=credential.handle,
        seal=deps.seal(credential.handle, request.id),
        expires_at=new_expiry,
        extensions=request.grant.extensions + 1,
        warned=False,
    )
    extended = request.advance(Event.EXTENDED, grant=grant, duration=request.duration + added, extension=None)
    detail: dict[str, Any] = {"added": format_duration(added), "old_accessor": old.id, "accessor": credential.handle.id}
    notices = [outbox.changed(request.id), granting.check_of(deps, request.id, credential)]
    expires = new_expiry.isoformat()
    if not deps.commit(request, extended, Event.EXTENDED, actor, notices=notices, expires_at=expires, **detail):
        if credential.handle != old:
            granting.try_revoke(deps, credential.handle, request.id)
        raise AlreadyDecided(f"{request.id} changed while extending it; look at it again.")
    if credential.handle != old:
        granting.revoke_replaced(deps, extended, old, request.grant.seal)
    granting.deliver_credential(deps, extended, credential)
    return extended
