"""Unit tests of the elevation use cases on honest fakes with a fake clock."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from grants.audit import AuditQuery, verify
from grants.deadlines import STUCK_APPROVAL_AFTER
from grants.domain import AlreadyDecided, Event, InvalidRequest, NotAllowed, NotFound, State
from tests.catalogs import ADMIN, APPROVER_1, APPROVER_2, APPROVER_3, AUDITOR, OUTSIDER, REQUESTER, make_catalog
from tests.fakes import Core, bootstrap


@pytest.fixture
def world() -> Core:
    return bootstrap(make_catalog())


def test_happy_path_issues_expires_and_chains(world):
    service, store, issuer, notifier, timer = world.service, world.store, world.issuer, world.notifier, world.timer
    request = service.request(REQUESTER, "payments-read", "30m", "INC-4411 replay stuck refunds")
    assert request.state is State.PENDING and len(request.id) <= 16
    active = service.approve(request.id, APPROVER_1)
    assert active.state is State.ACTIVE and active.grant.handle.id in issuer.live
    assert active.expires_at == active.grant.issued_at + timedelta(minutes=30)
    timer.advance(timedelta(minutes=29, seconds=59))
    assert store.get(request.id).state is State.ACTIVE
    timer.advance(timedelta(seconds=1))
    assert store.get(request.id).state is State.EXPIRED and not issuer.live
    assert store.names() == ["requested", "approved", "issued", "expiry_warned", "expired"]
    assert verify(store.events(AuditQuery())).intact
    assert ("credential", (request.id, active.grant.handle.id)) in notifier.sent


def test_requested_event_holds_reason_and_issued_the_accessor(world):
    service, store = world.service, world.store
    request = service.request(REQUESTER, "payments-read", None, "INC-1 look")
    active = service.approve(request.id, APPROVER_1)
    assert store.audit[0].detail["reason"] == "INC-1 look" and store.audit[0].detail["duration"] == "15m"
    assert store.audit[2].detail["accessor"] == active.grant.handle.id


@pytest.mark.parametrize(
    ("scope", "duration", "reason", "field"),
    [
        ("nope", "10m", "INC-1", "scope"),
        ("payments-read", "2h", "INC-1", "duration"),
        ("payments-read", "10x", "INC-1", "duration"),
        ("payments-read", "0s", "INC-1", "duration"),
        ("payments-read", "10m", "   ", "reason"),
        ("payments-write", "10m", "no ticket here", "reason"),
        ("payments-write", "1m", "INC-1", "duration"),
    ],
)
def test_bad_requests_store_nothing_and_notify_nobody(world, scope, duration, reason, field):
    service, store, notifier, timer = world.service, world.store, world.notifier, world.timer
    with pytest.raises(InvalidRequest) as refused:
        service.request(REQUESTER, scope, duration, reason)
    assert refused.value.context["field"] == field
    assert not store.requests and not store.audit and not notifier.sent and not timer.jobs


def test_not_a_requester_is_refused(world):
    service, store = world.service, world.store
    with pytest.raises(InvalidRequest, match="not among the requesters"):
        service.request(OUTSIDER, "payments-write", "10m", "INC-1")
    assert not store.requests


def test_second_open_request_for_same_scope_is_refused(world):
    service = world.service
    first = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    with pytest.raises(InvalidRequest, match=first.id):
        service.request(REQUESTER, "payments-read", "10m", "INC-2")


@pytest.mark.parametrize(("actor", "rule"), [(REQUESTER, "self_approval"), (OUTSIDER, "not_an_approver")])
def test_refused_decisions_are_audited(world, actor, rule):
    service, store, issuer = world.service, world.store, world.issuer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    for decide in (service.approve, service.deny):
        with pytest.raises(NotAllowed) as refused:
            decide(request.id, actor)
        assert refused.value.rule == rule
    rejected = [e for e in store.audit if e.event == "rejected"]
    assert [(e.actor, e.detail["rule"], e.request_id) for e in rejected] == [(actor, rule, request.id)]  # the first, in full
    world.clock.advance(timedelta(minutes=2))
    assert service.flush_refusals() == 1  # the repeat of the burst, counted on the request's own trail
    repeat = store.audit[-1]
    assert (repeat.actor, repeat.request_id, repeat.detail["rule"], repeat.detail["repeated"]) == (actor, request.id, rule, 1)
    assert store.get(request.id).state is State.PENDING and not issuer.live


def test_approver_who_is_requester_cannot_self_approve_two_step(world):
    service = world.service
    request = service.request(APPROVER_1, "payments-write", "10m", "CHG-7")
    with pytest.raises(NotAllowed, match="own request"):
        service.approve(request.id, APPROVER_1)


def test_two_distinct_approvals_required(world):
    service, store, issuer = world.service, world.store, world.issuer
    request = service.request(REQUESTER, "payments-write", "10m", "CHG-7 rotate")
    first = service.approve(request.id, APPROVER_1)
    assert first.state is State.PENDING and first.approvals == (APPROVER_1,)
    with pytest.raises(NotAllowed, match="already approved") as refused:
        service.approve(request.id, APPROVER_1)
    assert refused.value.rule == "one_step_per_person"
    assert not issuer.live
    done = service.approve(request.id, APPROVER_3)
    assert done.state is State.ACTIVE and len(issuer.live) == 1
    assert store.names() == ["requested", "approval_added", "rejected", "approved", "issued"]


def test_decision_after_decision_says_already_decided(world):
    service, issuer = world.service, world.issuer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    service.deny(request.id, APPROVER_1, "not now")
    with pytest.raises(AlreadyDecided, match="denied"):
        service.approve(request.id, APPROVER_2)
    assert not issuer.live


def test_revoke_rights(world):
    service, store, issuer = world.service, world.store, world.issuer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    service.approve(request.id, APPROVER_1)
    with pytest.raises(NotAllowed):
        service.revoke(request.id, OUTSIDER)
    assert store.audit[-1].event == "rejected" and store.audit[-1].detail["rule"] == "not_allowed_to_revoke"
    revoked = service.revoke(request.id, ADMIN)
    assert revoked.state is State.REVOKED and not issuer.live
    with pytest.raises(AlreadyDecided):
        service.revoke(request.id, REQUESTER)


def test_unknown_request_id(world):
    service = world.service
    with pytest.raises(NotFound, match="JIT-NOPE") as refused:
        service.revoke("JIT-NOPE", REQUESTER)
    assert "list" not in str(refused.value), "the command hint is the chat side's (bot/messages.HINTS)"


def test_pending_times_out(world):
    service, store, notifier, timer = world.service, world.store, world.notifier, world.timer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    timer.advance(timedelta(minutes=59))
    assert store.get(request.id).state is State.PENDING
    timer.advance(timedelta(minutes=1))
    assert store.get(request.id).state is State.TIMED_OUT
    assert ("told", (request.id, "timed_out")) in notifier.sent


def test_cancel_by_requester_only(world):
    service, _store = world.service, world.store
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    with pytest.raises(NotAllowed):
        service.cancel(request.id, APPROVER_1)
    assert service.revoke(request.id, REQUESTER).state is State.CANCELLED


def test_vault_down_at_issue_fails_cleanly(world):
    service, store, issuer, notifier = world.service, world.store, world.issuer, world.notifier
    issuer.down = True
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    failed = service.approve(request.id, APPROVER_1)
    assert failed.state is State.FAILED and store.names()[-1] == "issue_failed"
    assert ("told", (request.id, "issue_failed")) in notifier.sent


def test_vault_down_at_expiry_retries_with_backoff(world):
    service, store, issuer, notifier, timer = world.service, world.store, world.issuer, world.notifier, world.timer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    service.approve(request.id, APPROVER_1)
    issuer.down = True
    timer.advance(timedelta(minutes=10))
    assert store.get(request.id).state is State.ACTIVE
    assert store.names()[-1] == "revoke_failed" and "alert" in notifier.kinds()
    timer.advance(timedelta(seconds=5))
    assert store.names().count("revoke_failed") == 2
    issuer.down = False
    timer.advance(timedelta(seconds=10))
    assert store.get(request.id).state is State.EXPIRED and not issuer.live
    assert store.names().count("expired") == 1


def test_slack_failure_never_undoes_a_decision(world):
    service, _store, issuer, notifier = world.service, world.store, world.issuer, world.notifier
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    notifier.broken = True
    assert service.approve(request.id, APPROVER_1).state is State.ACTIVE and issuer.live


def test_what_fell_due_during_downtime_is_done_at_the_first_wake_up(world):
    service, store, issuer, timer = world.service, world.store, world.issuer, world.timer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    service.approve(request.id, APPROVER_1)
    stale = service.request(APPROVER_3, "payments-read", "10m", "INC-2")
    timer.clock.advance(timedelta(hours=2))  # the bot was down: the claim loop finds both due and wakes each
    for rid in (request.id, stale.id):
        service.wake(rid)
    assert store.get(request.id).state is State.EXPIRED and store.get(stale.id).state is State.TIMED_OUT
    assert not issuer.live


def test_an_approval_interrupted_before_vault_is_due_work_and_issued_once(world):
    service, store, issuer, timer = world.service, world.store, world.issuer, world.timer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    # Simulate a crash between the decision and Vault: approved, never issued.
    pending = store.get(request.id)
    approval = pending.with_approval(given=(APPROVER_1,), decided_by=APPROVER_1, decided_at=timer.clock.now())
    approved = pending.advance(Event.APPROVED, approval=approval)
    service.deps.commit(pending, approved, Event.APPROVED, APPROVER_1)  # the approval's own commit arms its retry
    assert store.get(request.id).wake_at == timer.clock.now() + STUCK_APPROVAL_AFTER
    service.wake(request.id)
    assert store.get(request.id).state is State.APPROVED and not issuer.live  # too fresh: the approver may be at it
    timer.advance(STUCK_APPROVAL_AFTER)
    assert store.get(request.id).state is State.ACTIVE and len(issuer.live) == 1
    service.wake(request.id)  # a second worker waking it too changes nothing
    assert len(issuer.live) == 1 and store.names().count("issued") == 1


def test_auditor_check_is_audited(world):
    service, store = world.service, world.store
    service.require_auditor(AUDITOR, "export")
    with pytest.raises(NotAllowed):
        service.require_auditor(REQUESTER, "export")
    assert store.audit[-1].event == "rejected" and store.audit[-1].actor == REQUESTER


def test_an_export_is_written_through_the_guarded_trail_writer(world, monkeypatch):
    """`exported` goes through the one writer that checks an event concerns no request, not straight to the store."""
    from grants.usecases import deps

    through: list[str] = []
    guarded = deps.append_trail

    def spy(store, event):
        through.append(event.event)
        return guarded(store, event)

    monkeypatch.setattr(deps, "append_trail", spy)
    assert world.service.export(AUDITOR, AuditQuery(), io.StringIO(), "jsonl") == 0
    assert through == ["exported"] and world.store.names() == ["exported"]


def test_waiting_on_lists_only_what_the_approver_can_decide(world):
    service = world.service
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    assert [r.id for r in service.waiting_on(APPROVER_1)] == [request.id]
    assert service.waiting_on(REQUESTER) == [] and service.waiting_on(OUTSIDER) == []
