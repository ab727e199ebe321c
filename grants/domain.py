"""Domain types: elevation requests, their states and the one transition table."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


# The one transition table: (from, to) -> the audit event that records it.
TRANSITIONS: dict[tuple[State, State], str] = {
    (State.PENDING, State.APPROVED): "approved",
    (State.PENDING, State.DENIED): "denied",
    (State.PENDING, State.CANCELLED): "cancelled",
    (State.PENDING, State.TIMED_OUT): "timed_out",
    (State.APPROVED, State.ACTIVE): "issued",
    (State.APPROVED, State.FAILED): "issue_failed",
    (State.ACTIVE, State.EXPIRED): "expired",
    (State.ACTIVE, State.REVOKED): "revoked",
}

_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: IDs are read and typed by people


def new_request_id() -> str:
    """A short, unguessable, typeable request ID such as `JIT-7K3QX9PA` (12 characters)."""
    return "JIT-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class Request:
    """One elevation request and, once issued, its grant."""

    id: str
    scope: str
    requester: str
    duration: timedelta
    reason: str
    state: State
    created_at: datetime
    pending_until: datetime
    approvals: tuple[str, ...] = ()
    approvals_required: int = 1
    decided_by: str | None = None
    decided_at: datetime | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    accessor: str | None = None
    revoke_attempts: int = 0
    break_glass: bool = False
    extensions: int = 0
    extension_pending: timedelta | None = None
    reminders_sent: int = 0
    escalated: bool = False
    nudged_at: datetime | None = None
    warned: bool = False
    review_state: str | None = None  # break-glass: open, acknowledged or flagged
    review_due_at: datetime | None = None
    reviewed_by: str | None = None
    wake_at: datetime | None = None  # the next moment a timer must look at this request
    version: int = 0

    def moved(self, to: State, **changes: Any) -> Request:
        """This request in state `to`; raises if the transition table does not allow it."""
        if (self.state, to) not in TRANSITIONS:
            raise IllegalTransition(f"{self.id}: {self.state} -> {to} is not a lawful transition")
        return replace(self, state=to, version=self.version + 1, **changes)

    def changed(self, **changes: Any) -> Request:
        """The same state with other fields changed (e.g. one more approval)."""
        return replace(self, version=self.version + 1, **changes)


@dataclass(frozen=True)
class AuditEvent:
    """One event of the append-only audit trail, before or after it was chained."""

    event: str
    at: datetime
    actor: str
    request_id: str | None = None
    scope: str | None = None
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None


@dataclass(frozen=True)
class IssuedCredential:
    """What the issuer hands back: the accessor to revoke by, and what the requester receives.

    `delivery` is secret (a response-wrapping token): it goes to the requester's DM and nowhere else.
    """

    accessor: str
    delivery: str = field(repr=False)
    delivery_ttl: timedelta = timedelta(minutes=5)
    unwrap_hint: str = field(default="", repr=False)


class DomainError(Exception):
    """A refusal the user should see; `code` selects the user-facing text in the bot."""

    code = "error"

    def __init__(self, message: str, **context: Any):
        super().__init__(message)
        self.context = context


class IllegalTransition(DomainError):
    code = "illegal_transition"


class InvalidRequest(DomainError):
    code = "invalid_request"


class NotFound(DomainError):
    code = "not_found"


class AlreadyDecided(DomainError):
    code = "already_decided"


class NotAllowed(DomainError):
    """A security refusal (not an approver, self-approval, not the requester); always audited."""

    code = "not_allowed"

    def __init__(self, message: str, rule: str, **context: Any):
        super().__init__(message, **context)
        self.rule = rule


class ExtensionOffered(DomainError):
    """The requester already holds the scope: extending it is the answer, not a second grant."""

    code = "extension_offered"


class CredentialError(Exception):
    """The credential backend (Vault) failed; the message never contains a secret."""


def ends_in(request: Request, now: datetime) -> timedelta:
    return (request.expires_at - now) if request.expires_at else timedelta(0)
