"""Domain types: elevation requests and their parts, audit events, and the refusals the core raises."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from grants.credentials import CredentialError, CredentialHandle
from grants.lifecycle import Event, State, next_state

__all__ = ["CredentialError", "Event", "State"]  # re-exported: most of the core imports them from here


_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: IDs are read and typed by people


def new_request_id() -> str:
    """A short, unguessable, typeable request ID such as `JIT-7K3QX9PA` (12 characters)."""
    return "JIT-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class Approval:
    """Sign-off so far: who approved (in step order), who decided, and the reminders around it."""

    required: int = 1
    given: tuple[str, ...] = ()
    decided_by: str | None = None
    decided_at: datetime | None = None
    reminders_sent: int = 0
    escalated: bool = False
    nudged_at: datetime | None = None


@dataclass(frozen=True)
class Grant:
    """The credential a request holds once issued, and how its life went."""

    handle: CredentialHandle
    issued_at: datetime
    expires_at: datetime
    extensions: int = 0
    warned: bool = False
    revoke_attempts: int = 0
    # The handle's seal (grants/seals.py): proves the credential is this request's without asking Vault. None: issued
    # before seals, or by a bot without the seal key; the kind then proves ownership by a lookup.
    seal: str | None = None


@dataclass(frozen=True)
class PendingExtension:
    """More time asked for an active grant, waiting for an approver.

    `number` names this ask: the request's version it created, so it is unique and only grows. A denied or failed
    ask changes no other counter, and its buttons must never decide a later ask (None: asked before asks were numbered).
    """

    added: timedelta
    number: int | None = None


@dataclass(frozen=True)
class Review:
    """The post-hoc review of a break-glass grant: open, acknowledged or flagged."""

    state: str = "open"
    due_at: datetime | None = None
    reviewed_by: str | None = None


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
    approval: Approval = Approval()
    grant: Grant | None = None
    extension: PendingExtension | None = None
    review: Review | None = None
    break_glass: bool = False
    on_behalf_of: str | None = None  # a service subject (`entity:NAME`) the grant is for, asked by the requester
    ticket: str | None = None  # `TRACKER:KEY`, the ticket checked at request time that justifies the grant
    not_after: datetime | None = None  # the grant never outlives this: the on-call shift (or window) that allowed it
    starts_at: datetime | None = None  # a later start: approved ahead, issued at this moment (not before)
    ended_at: datetime | None = None
    wake_at: datetime | None = None  # the next moment a timer must look at this request
    version: int = 0

    def advance(self, event: Event, **changes: Any) -> Request:
        """This request after `event`, in the state the lifecycle table says; raises if the table forbids it."""
        to = next_state(self.state, event)
        if to is None:
            raise IllegalTransition(f"{self.id}: `{event}` is not lawful for a request that is {self.state}")
        return replace(self, state=to, version=self.version + 1, **changes)

    def with_approval(self, **changes: Any) -> Approval:
        return replace(self.approval, **changes)

    def with_grant(self, **changes: Any) -> Grant:
        assert self.grant is not None, f"{self.id} has no grant"
        return replace(self.grant, **changes)

    # Read-only views of what people and messages most often ask about.
    @property
    def approvals(self) -> tuple[str, ...]:
        return self.approval.given

    @property
    def decided_by(self) -> str | None:
        return self.approval.decided_by

    @property
    def expires_at(self) -> datetime | None:
        return self.grant.expires_at if self.grant else None

    @property
    def extension_pending(self) -> timedelta | None:
        return self.extension.added if self.extension else None

    @property
    def review_state(self) -> str | None:
        return self.review.state if self.review else None


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


class AlreadyOpen(InvalidRequest):
    """A second open request for the same requester and scope (the `request_id` of the first, when known); the chat
    side says how to see or end it."""

    code = "already_open"


class AskNormally(InvalidRequest):
    """This way of asking (break-glass, on behalf of a service) is not open for `scope`; the chat side shows how to
    make a normal request for it."""

    code = "ask_normally"


class NotFound(DomainError):
    code = "not_found"


class AlreadyDecided(DomainError):
    """The request is past the step asked for. When the refusal names the decision (`state`, `decided_by`: a user
    ID, "system" or None), the chat side writes the sentence with its own markup; the message stays plain text."""

    code = "already_decided"

    def __init__(self, message: str, *, request_id: str | None = None, state: State | None = None, decided_by: str | None = None):
        super().__init__(message, **({"request_id": request_id} if request_id else {}))
        self.request_id, self.state, self.decided_by = request_id, state, decided_by


class SshKeyMissing(InvalidRequest):
    """An ssh scope was asked for by someone with no registered public key; the chat side says how to register one."""

    code = "ssh_key_missing"


class CsrMissing(InvalidRequest):
    """A pki scope was asked for by someone with no registered CSR; the chat side says how to register one."""

    code = "csr_missing"


class NotAllowed(DomainError):
    """A security refusal (not an approver, self-approval, not the requester); always audited."""

    code = "not_allowed"

    def __init__(self, message: str, rule: str, **context: Any):
        super().__init__(message, **context)
        self.rule = rule


class StaleDecision(DomainError):
    """A click on a decision the request no longer waits for (a later extension, say): refused and audited."""

    code = "stale_decision"


class ExtensionOffered(DomainError):
    """The requester already holds the scope: extending it is the answer, not a second grant."""

    code = "extension_offered"


def open_decision(request: Request) -> str | None:
    """The decision a request waits for now: `r` (the request itself) or `eN` (the extension ask numbered N); None: none."""
    if request.state is State.PENDING:
        return "r"
    if request.state is State.ACTIVE and request.extension is not None and request.grant is not None:
        if request.extension.number is None:  # asked before asks were numbered: what its buttons were shown for
            return f"e{request.grant.extensions + 1}"
        return f"e{request.extension.number}"
    return None


def decision_ref(request: Request) -> str:
    """What a decision button carries: the request ID and the exact decision it was shown for."""
    return f"{request.id}:{open_decision(request) or 'r'}"


def split_decision(ref: str) -> tuple[str, str]:
    """`JIT-…:e2` → (`JIT-…`, `e2`); a bare request ID (an older message) was shown for the request itself."""
    request_id, _, shown_for = ref.partition(":")
    return request_id, shown_for or "r"


def ends_in(request: Request, now: datetime) -> timedelta:
    return (request.expires_at - now) if request.expires_at else timedelta(0)
