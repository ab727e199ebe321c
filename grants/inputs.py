"""What a valid request is: a known scope, a duration within its bounds, a reason, an extension within its caps."""

from __future__ import annotations

import re
from datetime import timedelta

from grants.allowances import extension_room
from grants.catalog import Catalog, Scope
from grants.domain import InvalidRequest, Request
from grants.durations import DURATION_EXAMPLES, DurationError, format_duration, parse_duration
from grants.text import UnsafeText, require_plain


def scope_of(catalog: Catalog, name: str) -> Scope:
    scope = catalog.scopes.get(name)
    if scope is None:
        known = ", ".join(sorted(catalog.scopes))
        raise InvalidRequest(f"There is no scope `{name}`. Known scopes: {known}.", field="scope")
    return scope


def checked_duration(scope_name: str, scope: Scope, text: str | None) -> timedelta:
    """The requested duration, or the scope's default; it must lie within the scope's bounds."""
    if not text:
        return scope.default
    try:
        duration = parse_duration(text)
    except DurationError as exc:
        raise InvalidRequest(str(exc), field="duration") from None
    if not (scope.min <= duration <= scope.max):
        raise InvalidRequest(
            f"`{scope_name}` can be granted for {scope.min_duration} to {scope.max_duration}; "
            f"you asked for {format_duration(duration)} (durations look like {DURATION_EXAMPLES}).",
            field="duration",
        )
    return duration


def checked_reason(scope_name: str, scope: Scope, reason: str) -> str:
    try:  # checked before whitespace is folded: split() would silently eat some control characters
        require_plain(reason, "the reason")
    except UnsafeText as exc:
        raise InvalidRequest(str(exc), field="reason") from None
    reason = " ".join(reason.split())
    if scope.require_reason and not reason:
        raise InvalidRequest(f"`{scope_name}` needs a reason, e.g. a ticket: INC-4411 replay stuck refunds.", field="reason")
    if scope.reason_pattern and not re.search(scope.reason_pattern, reason):
        raise InvalidRequest(
            f"The reason for `{scope_name}` must match `{scope.reason_pattern}` (for example a ticket ID).",
            field="reason",
        )
    if len(reason) > 500:
        raise InvalidRequest("Keep the reason under 500 characters; link a ticket for the details.", field="reason")
    return reason


def checked_extension(scope: Scope, request: Request, duration_text: str | None) -> timedelta:
    room = extension_room(scope, request)
    if request.break_glass:
        raise InvalidRequest("Break-glass grants cannot be extended; request the scope normally.", field="duration")
    if room <= timedelta(0):
        raise InvalidRequest(
            f"`{request.scope}` allows {scope.max_extensions} extension(s) and at most "
            f"{format_duration(scope.max_total)} in all; {request.id} has no room left. Request it again if you must.",
            field="duration",
        )
    if not duration_text:
        return min(scope.default, room)
    try:
        added = parse_duration(duration_text)
    except DurationError as exc:
        raise InvalidRequest(str(exc), field="duration") from None
    if added > room:
        raise InvalidRequest(f"{request.id} can be extended by at most {format_duration(room)}.", field="duration")
    return added
