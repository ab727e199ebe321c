"""The request lifecycle: its states, every audit event by name, and the one (state, event) -> state table."""

from __future__ import annotations

from enum import StrEnum


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


class Event(StrEnum):
    """Every audit event jitbot writes; its value is the name stored, exported and counted."""

    REQUESTED = "requested"
    APPROVAL_ADDED = "approval_added"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    NUDGED = "nudged"
    ISSUED = "issued"
    ISSUE_FAILED = "issue_failed"
    EXPIRY_WARNED = "expiry_warned"
    EXTENSION_REQUESTED = "extension_requested"
    EXTENSION_DENIED = "extension_denied"
    EXTENSION_FAILED = "extension_failed"
    EXTENDED = "extended"
    REISSUED = "reissued"  # the credential never reached its person in time: replaced by a new one, the old revoked
    REVOKE_FAILED = "revoke_failed"
    REVOKED = "revoked"
    EXPIRED = "expired"
    REVIEW_REMINDED = "review_reminded"
    REVIEW_ACKNOWLEDGED = "review_acknowledged"
    REVIEW_FLAGGED = "review_flagged"
    REJECTED = "rejected"  # an attempt refused; may concern a request in any state, or none
    EXPORTED = "exported"  # the trail itself was exported; concerns no request
    SSH_KEY_REGISTERED = "ssh_key_registered"  # a person registered an SSH public key; concerns no request
    CSR_REGISTERED = "csr_registered"  # a person registered a certificate signing request; concerns no request
    NOTIFICATION_FAILED = "notification_failed"  # a message could not reach someone; changes no request
    ORPHAN_ENDED = "orphan_ended"  # reconcile ended a credential no active grant held; changes no request
    ANCHOR_REFUSED = "anchor_refused"  # the trail no longer continues its anchor outside the database: not anchored


ENDED = frozenset({State.EXPIRED, State.REVOKED, State.DENIED, State.CANCELLED, State.TIMED_OUT, State.FAILED})
OPEN = frozenset({State.PENDING, State.APPROVED, State.ACTIVE})
# A break-glass review outlives the grant it reviews.
_REVIEWABLE = (State.ACTIVE, State.EXPIRED, State.REVOKED)

# The one lifecycle table. `None` is "no request yet": a request is born by its `requested` event.
# Every audited change of a request goes through it (grants.domain.Request.advance).
LIFECYCLE: dict[tuple[State | None, Event], State] = {
    (None, Event.REQUESTED): State.PENDING,
    (State.PENDING, Event.APPROVAL_ADDED): State.PENDING,
    (State.PENDING, Event.REMINDED): State.PENDING,
    (State.PENDING, Event.ESCALATED): State.PENDING,
    (State.PENDING, Event.NUDGED): State.PENDING,
    (State.PENDING, Event.APPROVED): State.APPROVED,
    (State.PENDING, Event.DENIED): State.DENIED,
    (State.PENDING, Event.CANCELLED): State.CANCELLED,
    (State.PENDING, Event.TIMED_OUT): State.TIMED_OUT,
    (State.APPROVED, Event.ISSUED): State.ACTIVE,
    (State.APPROVED, Event.ISSUE_FAILED): State.FAILED,
    (State.ACTIVE, Event.EXPIRY_WARNED): State.ACTIVE,
    (State.ACTIVE, Event.EXTENSION_REQUESTED): State.ACTIVE,
    (State.ACTIVE, Event.EXTENSION_DENIED): State.ACTIVE,
    (State.ACTIVE, Event.EXTENSION_FAILED): State.ACTIVE,
    (State.ACTIVE, Event.EXTENDED): State.ACTIVE,
    (State.ACTIVE, Event.REISSUED): State.ACTIVE,
    (State.ACTIVE, Event.REVOKE_FAILED): State.ACTIVE,
    (State.ACTIVE, Event.EXPIRED): State.EXPIRED,
    (State.ACTIVE, Event.REVOKED): State.REVOKED,
    **{
        (state, event): state
        for state in _REVIEWABLE
        for event in (Event.REVIEW_REMINDED, Event.REVIEW_ACKNOWLEDGED, Event.REVIEW_FLAGGED)
    },
    **{(state, Event.REJECTED): state for state in State},
}

# Events about the trail or about nobody's request: appended without a request change.
TRAIL_EVENTS = frozenset(
    {
        Event.REJECTED,
        Event.EXPORTED,
        Event.SSH_KEY_REGISTERED,
        Event.CSR_REGISTERED,
        Event.NOTIFICATION_FAILED,
        Event.ORPHAN_ENDED,
        Event.ANCHOR_REFUSED,
    }
)


def next_state(state: State | None, event: Event) -> State | None:
    """The state `event` leads to from `state`, or None when the table does not allow it."""
    return LIFECYCLE.get((state, event))
