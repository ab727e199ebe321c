"""What a valid request is: a known scope, a duration within its bounds, a reason, an extension within its caps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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


def checked_duration(scope_name: str, scope: Scope, text: str | None, default: timedelta | None = None) -> timedelta:
    """The requested duration, else `default`; either must lie within the scope's bounds. Neither: the scope's default."""
    if not text:
        if default is None:
            return scope.default_duration
        duration = default
    else:
        try:
            duration = parse_duration(text)
        except DurationError as exc:
            raise InvalidRequest(str(exc), field="duration") from None
    if not (scope.min_duration <= duration <= scope.max_duration):
        raise InvalidRequest(
            f"`{scope_name}` can be granted for {scope.min_duration} to {scope.max_duration}; "
            f"you asked for {format_duration(duration)} (durations look like {DURATION_EXAMPLES}).",
            field="duration",
        )
    return duration


def parsed_duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise InvalidRequest(str(exc), field="duration") from None


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


START_AHEAD = timedelta(days=7)  # how far ahead a start may be scheduled (approvers decide ahead, not for months)


def checked_start(text: str, now: datetime) -> datetime:
    """A later start: `HH:MM` (UTC, its next occurrence) or an ISO 8601 moment with its offset; in the future, within 7 days."""
    try:
        if re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", text):
            hours, minutes = (int(part) for part in text.split(":"))
            start = now.astimezone(UTC).replace(hour=hours, minute=minutes, second=0, microsecond=0)
            start = start if start > now else start + timedelta(days=1)
        else:
            start = datetime.fromisoformat(text)
            if start.tzinfo is None:
                raise ValueError("no offset")
    except ValueError:
        raise InvalidRequest(
            f"`{text}` is not a start time: write `at 22:00` (UTC) or `at 2026-12-08T22:00+00:00`.", field="start"
        ) from None
    if start <= now:
        raise InvalidRequest(f"The start {start:%Y-%m-%d %H:%M} UTC has passed; pick a later one.", field="start")
    if start - now > START_AHEAD:
        raise InvalidRequest("A start can be scheduled at most 7 days ahead.", field="start")
    return start.astimezone(UTC)


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
        return min(scope.default_duration, room)
    try:
        added = parse_duration(duration_text)
    except DurationError as exc:
        raise InvalidRequest(str(exc), field="duration") from None
    if added > room:
        raise InvalidRequest(f"{request.id} can be extended by at most {format_duration(room)}.", field="duration")
    return added
