"""The lifecycle table is the law: every (state, event) pair is either allowed or refused, and the core obeys it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grants.domain import IllegalTransition, Request
from grants.lifecycle import ENDED, LIFECYCLE, OPEN, TRAIL_EVENTS, Event, State, next_state
from tests.catalogs import APPROVER_1, REQUESTER, make_catalog
from tests.fakes import bootstrap

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

# What a reader of the table should be able to rely on, written out once more by hand.
EXPECTED = {
    State.PENDING: {
        Event.APPROVAL_ADDED: State.PENDING,
        Event.REMINDED: State.PENDING,
        Event.ESCALATED: State.PENDING,
        Event.NUDGED: State.PENDING,
        Event.APPROVED: State.APPROVED,
        Event.DENIED: State.DENIED,
        Event.CANCELLED: State.CANCELLED,
        Event.TIMED_OUT: State.TIMED_OUT,
    },
    State.APPROVED: {Event.ISSUED: State.ACTIVE, Event.ISSUE_FAILED: State.FAILED},
    State.ACTIVE: {
        Event.EXPIRY_WARNED: State.ACTIVE,
        Event.EXTENSION_REQUESTED: State.ACTIVE,
        Event.EXTENSION_DENIED: State.ACTIVE,
        Event.EXTENSION_FAILED: State.ACTIVE,
        Event.EXTENDED: State.ACTIVE,
        Event.REISSUED: State.ACTIVE,
        Event.REVOKE_FAILED: State.ACTIVE,
        Event.EXPIRED: State.EXPIRED,
        Event.REVOKED: State.REVOKED,
    },
}
REVIEWS = (Event.REVIEW_REMINDED, Event.REVIEW_ACKNOWLEDGED, Event.REVIEW_FLAGGED)


def expected(state: State | None, event: Event) -> State | None:
    if state is None:
        return State.PENDING if event is Event.REQUESTED else None
    if event is Event.REJECTED:
        return state  # a refusal changes nothing, whatever the state
    if event in REVIEWS and state in (State.ACTIVE, State.EXPIRED, State.REVOKED):
        return state  # a break-glass review outlives its grant
    return EXPECTED.get(state, {}).get(event)


def request_in(state: State) -> Request:
    return Request(
        id="JIT-TEST0001",
        scope="payments-read",
        requester=REQUESTER,
        duration=timedelta(minutes=5),
        reason="x",
        state=state,
        created_at=T0,
        pending_until=T0 + timedelta(hours=1),
    )


@pytest.mark.parametrize("state", [None, *State])
@pytest.mark.parametrize("event", list(Event))
def test_every_pair_is_allowed_or_refused(state: State | None, event: Event) -> None:
    assert next_state(state, event) is expected(state, event)
    if state is None:
        return
    request = request_in(state)
    if expected(state, event) is None:
        with pytest.raises(IllegalTransition):
            request.advance(event)
    else:
        moved = request.advance(event)
        assert moved.state is expected(state, event) and moved.version == request.version + 1


def test_ended_states_take_nothing_but_refusals_and_reviews() -> None:
    for (state, event), _ in LIFECYCLE.items():
        if state in ENDED:
            assert event is Event.REJECTED or event in REVIEWS
    assert OPEN.isdisjoint(ENDED) and OPEN | ENDED == set(State)
    assert Event.EXPORTED not in {event for _, event in LIFECYCLE}  # about the trail, never about a request
    assert Event.SSH_KEY_REGISTERED not in {event for _, event in LIFECYCLE}  # about a person, never about a request
    assert Event.CSR_REGISTERED not in {event for _, event in LIFECYCLE}  # about a person, never about a request
    assert Event.NOTIFICATION_FAILED not in {event for _, event in LIFECYCLE}  # a message failed; the request did not change
    assert Event.ORPHAN_ENDED not in {event for _, event in LIFECYCLE}  # about a stray credential, changes no request
    assert Event.ANCHOR_REFUSED not in {event for _, event in LIFECYCLE}  # about the trail itself, never about a request
    assert TRAIL_EVENTS == {
        Event.REJECTED,
        Event.EXPORTED,
        Event.SSH_KEY_REGISTERED,
        Event.CSR_REGISTERED,
        Event.NOTIFICATION_FAILED,
        Event.ORPHAN_ENDED,
        Event.ANCHOR_REFUSED,
    }


def test_the_core_cannot_write_a_change_the_table_forbids() -> None:
    """The one choke point (Deps.commit) checks the table: a use case that tried to skip a state would fail loudly."""
    core = bootstrap(make_catalog())
    pending = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    deps = core.service.deps
    forged = request_in(State.ACTIVE)  # "issued" straight from pending, skipping the approval
    with pytest.raises(IllegalTransition):
        deps.commit(pending, forged, Event.ISSUED, APPROVER_1)
    with pytest.raises(IllegalTransition):  # an event that does not lead where the updated request says
        deps.commit(pending, pending.advance(Event.NUDGED), Event.APPROVED, APPROVER_1)
    stored = core.store.get(pending.id)
    assert core.store.names() == ["requested"] and (stored.state, stored.version) == (State.PENDING, 0)
