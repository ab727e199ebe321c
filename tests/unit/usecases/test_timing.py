"""Unit tests of `grants/usecases/timing.py`: what comes due (expiry, timeouts, reminders, escalation, a later start),
also after downtime."""

from __future__ import annotations

from datetime import timedelta

from grants.deadlines import STUCK_APPROVAL_AFTER
from grants.domain import Event, State
from tests.catalogs import APPROVER_1, APPROVER_3, REQUESTER, make_catalog
from tests.fakes import bootstrap
from tests.unit.usecases.worlds import BOSS, REQ


def test_pending_times_out(core):
    service, store, notifier, timer = core.service, core.store, core.notifier, core.timer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    timer.advance(timedelta(minutes=59))
    assert store.get(request.id).state is State.PENDING
    timer.advance(timedelta(minutes=1))
    assert store.get(request.id).state is State.TIMED_OUT
    assert ("told", (request.id, "timed_out")) in notifier.sent


def test_vault_down_at_expiry_retries_with_backoff(core):
    service, store, issuer, notifier, timer = core.service, core.store, core.issuer, core.notifier, core.timer
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


def test_an_early_revoke_vault_missed_is_retried_and_still_recorded_as_revoked_by_its_holder(core):
    """Vault away when the holder revokes: the grant ends at the next attempt, and the trail says who ended it."""
    service, store, issuer, notifier, timer = core.service, core.store, core.issuer, core.notifier, core.timer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    service.approve(request.id, APPROVER_1)
    issuer.down = True
    service.revoke(request.id, REQUESTER)
    assert store.get(request.id).state is State.ACTIVE and store.names()[-1] == "revoke_failed"
    timer.advance(timedelta(seconds=5))  # the first retry fails too
    assert store.names().count("revoke_failed") == 2
    issuer.down = False
    timer.advance(timedelta(seconds=10))
    ended = store.get(request.id)
    assert ended.state is State.REVOKED and not issuer.live
    last = store.audit[-1]
    assert (last.event, last.actor) == ("revoked", REQUESTER) and "expired" not in store.names()
    assert ("told", (request.id, "revoked")) in notifier.sent


def test_what_fell_due_during_downtime_is_done_at_the_first_wake_up(core):
    service, store, issuer, timer = core.service, core.store, core.issuer, core.timer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    service.approve(request.id, APPROVER_1)
    stale = service.request(APPROVER_3, "payments-read", "10m", "INC-2")
    timer.clock.advance(timedelta(hours=2))  # the bot was down: the claim loop finds both due and wakes each
    for rid in (request.id, stale.id):
        service.wake(rid)
    assert store.get(request.id).state is State.EXPIRED and store.get(stale.id).state is State.TIMED_OUT
    assert not issuer.live


def test_an_approval_interrupted_before_vault_is_due_work_and_issued_once(core):
    service, store, issuer, timer = core.service, core.store, core.issuer, core.timer
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


def test_reminders_double_and_escalation_fires_on_time(w):
    service, store, notifier, timer = w.service, w.store, w.notifier, w.timer
    r = service.request(REQ, "prod-write", "30m", "CHG-3")
    timer.advance(timedelta(minutes=9, seconds=59))
    assert "reminded" not in store.names()
    timer.advance(timedelta(seconds=1))  # 10m
    timer.advance(timedelta(minutes=19, seconds=59))  # 29m59s: the next reminder is at 30m, with the escalation
    assert store.names().count("reminded") == 1 and "escalated" not in store.names()
    timer.advance(timedelta(seconds=1))  # 30m
    assert "escalated" in store.names()
    assert ("notice", (r.id, [BOSS], "escalation")) in notifier.sent
    timer.advance(timedelta(minutes=40))  # 70m: the third reminder (10m, 30m, 70m)
    assert store.names().count("reminded") == 3
    # Escalation approvers may now approve the waiting step.
    assert service.approve(r.id, BOSS).state is State.PENDING


def test_a_later_start_is_approved_ahead_issued_at_the_start_and_bounded_by_its_window() -> None:
    world = bootstrap(make_catalog())
    now = world.clock.now()  # 12:00 UTC
    request = world.service.request(REQUESTER, "payments-read", "30m", "INC-1 deploy", start_text="22:00")
    start = now.replace(hour=22)
    assert (request.starts_at, request.pending_until, request.not_after) == (start, start, start + timedelta(minutes=30))
    assert world.store.audit[0].detail["starts_at"] == start.isoformat()
    approved = world.service.approve(request.id, APPROVER_1)
    assert approved.state is State.APPROVED and not world.issuer.live and approved.wake_at == start
    assert ("told", (request.id, "approved")) in world.notifier.sent  # told now: nothing else happens until the start
    world.service.reconcile()  # an approval waiting for its start is not a stuck one
    assert world.store.get(request.id).state is State.APPROVED
    world.timer.advance(start - now - timedelta(seconds=1))
    assert world.store.get(request.id).state is State.APPROVED
    world.timer.advance(timedelta(seconds=1))
    active = world.store.get(request.id)
    assert active.state is State.ACTIVE and active.grant.issued_at == start and active.expires_at == start + timedelta(minutes=30)


def test_a_later_start_issued_late_still_ends_with_its_window_and_fails_once_it_passed() -> None:
    world = bootstrap(make_catalog())
    now = world.clock.now()
    request = world.service.request(REQUESTER, "payments-read", "30m", "INC-1 deploy", start_text="13:00")
    world.service.approve(request.id, APPROVER_1)
    world.clock.advance(timedelta(hours=1, minutes=10))  # the bot was down over the start
    world.service.wake(request.id)
    late = world.store.get(request.id)
    assert late.state is State.ACTIVE and late.expires_at == now + timedelta(hours=1, minutes=30)
    other = world.service.request(APPROVER_3, "payments-read", "30m", "INC-2 deploy", start_text="14:00")
    world.service.approve(other.id, APPROVER_1)
    world.clock.advance(timedelta(hours=1, minutes=30))  # 14:40: past the whole window
    world.service.wake(other.id)
    assert world.store.get(other.id).state is State.FAILED


def test_a_later_start_nobody_approved_in_time_times_out_at_the_start() -> None:
    world = bootstrap(make_catalog())
    request = world.service.request(REQUESTER, "payments-read", "30m", "INC-1 deploy", start_text="12:30")
    world.timer.advance(timedelta(minutes=30))
    assert world.store.get(request.id).state is State.TIMED_OUT
