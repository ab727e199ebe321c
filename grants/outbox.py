"""Notification intents (the outbox): what must be told, written in the same transaction as the change that causes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from grants.credentials import Wrapping
from grants.lifecycle import Event

# A notice gives up after this long undelivered (with an alert and an audit event); Slack outages are shorter.
GIVE_UP_AFTER = timedelta(minutes=15)
BACKOFF_FIRST = timedelta(seconds=2)
BACKOFF_MAX = timedelta(minutes=2)
# A dead worker's claim expires after this and another replica delivers the row; a live worker renews its claims
# every third of it (heartbeat), so a slow delivery (Slack's own retries) is never taken over while it runs.
CLAIM_LEASE = timedelta(seconds=10)

OPENED, NOTICE, CHANGED, TOLD, ALERT, CREDENTIAL = "opened", "notice", "changed", "told", "alert", "credential"
TICKET = "ticket"  # a comment on the request's ticket (its tracker down must not hold up the request's messages)
# A credential row is a check that comes due when the DM should have arrived: it never holds the secret and
# it does not hold up the request's other notices (it is not a message; see usecases.delivering).
UNORDERED = frozenset({ALERT, CREDENTIAL, TICKET})


class News(StrEnum):
    """What a requester is told that is not an audit event of their request (those are told by their `Event`)."""

    AUTO_APPROVED = "auto_approved"
    EXPIRING = "expiring"
    UNREACHABLE = "unreachable"


class Alert(StrEnum):
    """What the alert channel is told; the chat side words each from its arguments (IDs, scope, error text)."""

    ISSUE_FAILED = "issue_failed"
    BREAK_GLASS = "break_glass"
    CREDENTIAL_MISMATCH = "credential_mismatch"
    BAD_SEAL = "bad_seal"
    REVOKE_FAILED = "revoke_failed"
    REPLACED_NOT_REVOKED = "replaced_not_revoked"
    REVIEW_FLAGGED = "review_flagged"
    UNREACHABLE = "unreachable"
    GAVE_UP = "gave_up"
    ANCHOR_REFUSED = "anchor_refused"
    ANCHOR_DOWN = "anchor_down"
    AUDIT_STREAM_BEHIND = "audit_stream_behind"
    INBOX_FORGED = "inbox_forged"
    INBOX_GAVE_UP = "inbox_gave_up"
    PLAIN = "plain"  # a sentence queued by an older release (`text`), shown escaped


def news_of(name: str) -> Event | News:
    """A stored news name back as its member: an audit event, else one of `News` (ValueError when neither)."""
    return News(name) if name in News.__members__.values() else Event(name)


@dataclass(frozen=True)
class Notice:
    """One intent: `kind`, the request it is about (None for alerts) and small JSON-able arguments. Never a secret."""

    kind: str
    request_id: str | None
    args: dict[str, Any] = field(default_factory=dict)
    due_in: timedelta | None = None  # not before now + due_in (credential checks); None: at once


@dataclass(frozen=True)
class Entry:
    """A notice as the outbox holds it."""

    id: int
    notice: Notice
    created_at: datetime
    attempts: int


@dataclass(frozen=True)
class Failure:
    """Why a delivery failed, as the adapter judges it: retry (honouring Retry-After) or give up now."""

    code: str  # an error name only: a provider's error payload may echo the message
    retryable: bool = True
    retry_after: timedelta | None = None


class Unreachable(Exception):
    """Some people could not be reached (unknown or deactivated); everyone else got the message."""

    def __init__(self, people: Iterable[str], reached: int, why: str):
        self.people, self.reached, self.why = sorted(people), reached, why
        super().__init__(f"{', '.join(self.people)} unreachable ({why}); {reached} reached")


def opened(request_id: str, approvers: Iterable[str]) -> Notice:
    return Notice(OPENED, request_id, {"approvers": sorted(approvers)})


def notice(request_id: str, approvers: Iterable[str], kind: str) -> Notice:
    return Notice(NOTICE, request_id, {"approvers": sorted(approvers), "notice": kind})


def ticket_note(request_id: str, text: str) -> Notice:
    return Notice(TICKET, request_id, {"text": text})


def changed(request_id: str) -> Notice:
    return Notice(CHANGED, request_id)


def told(request_id: str, news: Event | News, **context: Any) -> Notice:
    return Notice(TOLD, request_id, {"news": news.value, "context": context})


def alert(kind: Alert, request_id: str | None = None, **context: Any) -> Notice:
    """An alert as typed fields (user IDs, scope, error text): the chat side writes the sentence and its mentions."""
    return Notice(ALERT, request_id, {"alert": kind.value, "context": context})


def alert_of(args: dict[str, Any]) -> tuple[Alert, dict[str, Any]]:
    """A stored alert's kind and arguments; a row an older release queued as free text becomes PLAIN."""
    if "alert" not in args:
        return Alert.PLAIN, {"text": str(args.get("text", ""))}
    return Alert(args["alert"]), dict(args.get("context") or {})


def credential_check(
    request_id: str, accessor: str, within: timedelta, wrapping: Wrapping | None = None, replaced: int = 0
) -> Notice:
    """Due when the DM should have arrived: unsettled by then, the credential is replaced unless its wrapping token
    (kept by accessor, never the token) was unwrapped. Each replacement in a row waits twice as long (Slack down)."""
    args: dict[str, Any] = {"accessor": accessor}
    if wrapping is not None:
        args |= {"wrap": wrapping.accessor, "wrap_until": wrapping.until.isoformat()}
    if replaced:
        args["replaced"] = replaced
    return Notice(CREDENTIAL, request_id, args, due_in=min(within * 2**replaced, BACKOFF_MAX))


def backoff(attempts: int, retry_after: timedelta | None = None) -> timedelta:
    """Exponential from BACKOFF_FIRST, capped; never sooner than the Retry-After Slack asked for."""
    delay: timedelta = min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)
    return max(delay, retry_after) if retry_after is not None else delay


def given_up(entry: Entry, now: datetime) -> bool:
    return now - entry.created_at >= GIVE_UP_AFTER
