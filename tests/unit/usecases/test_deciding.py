"""Unit tests of `grants/usecases/deciding.py`: who may approve, deny, cancel or revoke, approval steps, stale
decisions, approve for less and `may_decide`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grants.domain import AlreadyDecided, InvalidRequest, NotAllowed, NotFound, StaleDecision, State, decision_ref
from tests.catalogs import ADMIN, APPROVER_1, APPROVER_2, APPROVER_3, OUTSIDER, REQUESTER, make_catalog
from tests.fakes import bootstrap
from tests.unit.usecases.worlds import BOSS, DEV, LEAD1, LEAD2, REQ, SEC1, SEC2


@pytest.mark.parametrize(("actor", "rule"), [(REQUESTER, "self_approval"), (OUTSIDER, "not_an_approver")])
def test_refused_decisions_are_audited(core, actor, rule):
    service, store, issuer = core.service, core.store, core.issuer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    for decide in (service.approve, service.deny):
        with pytest.raises(NotAllowed) as refused:
            decide(request.id, actor)
        assert refused.value.rule == rule
    rejected = [e for e in store.audit if e.event == "rejected"]
    assert [(e.actor, e.detail["rule"], e.request_id) for e in rejected] == [(actor, rule, request.id)]  # the first, in full
    core.clock.advance(timedelta(minutes=2))
    assert service.flush_refusals() == 1  # the repeat of the burst, counted on the request's own trail
    repeat = store.audit[-1]
    assert (repeat.actor, repeat.request_id, repeat.detail["rule"], repeat.detail["repeated"]) == (actor, request.id, rule, 1)
    assert store.get(request.id).state is State.PENDING and not issuer.live


def test_approver_who_is_requester_cannot_self_approve_two_step(core):
    service = core.service
    request = service.request(APPROVER_1, "payments-write", "10m", "CHG-7")
    with pytest.raises(NotAllowed, match="own request"):
        service.approve(request.id, APPROVER_1)


def test_two_distinct_approvals_required(core):
    service, store, issuer = core.service, core.store, core.issuer
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


def test_decision_after_decision_says_already_decided(core):
    service, issuer = core.service, core.issuer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    service.deny(request.id, APPROVER_1, "not now")
    with pytest.raises(AlreadyDecided, match="denied"):
        service.approve(request.id, APPROVER_2)
    assert not issuer.live


def test_revoke_rights(core):
    service, store, issuer = core.service, core.store, core.issuer
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    service.approve(request.id, APPROVER_1)
    with pytest.raises(NotAllowed):
        service.revoke(request.id, OUTSIDER)
    assert store.audit[-1].event == "rejected" and store.audit[-1].detail["rule"] == "not_allowed_to_revoke"
    revoked = service.revoke(request.id, ADMIN)
    assert revoked.state is State.REVOKED and not issuer.live
    with pytest.raises(AlreadyDecided):
        service.revoke(request.id, REQUESTER)


def test_unknown_request_id(core):
    service = core.service
    with pytest.raises(NotFound, match="JIT-NOPE") as refused:
        service.revoke("JIT-NOPE", REQUESTER)
    assert "list" not in str(refused.value), "the command hint is the chat side's (bot/messages.HINTS)"


def test_cancel_by_requester_only(core):
    service, _store = core.service, core.store
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    with pytest.raises(NotAllowed):
        service.cancel(request.id, APPROVER_1)
    assert service.revoke(request.id, REQUESTER).state is State.CANCELLED


def test_steps_in_order_with_usergroups(w):
    service, store, notifier = w.service, w.store, w.notifier
    r = service.request(REQ, "prod-write", "30m", "CHG-1")
    assert r.approval.required == 2
    assert notifier.sent[0] == ("opened", (r.id, [LEAD1, LEAD2]))  # step one's approvers only
    with pytest.raises(NotAllowed) as refused:
        service.approve(r.id, SEC1)  # security cannot approve before the team lead
    assert refused.value.rule == "not_this_step"
    r = service.approve(r.id, LEAD2)
    assert r.state is State.PENDING and ("opened", (r.id, [LEAD1, SEC1, SEC2])) in notifier.sent
    with pytest.raises(NotAllowed) as refused:
        service.approve(r.id, LEAD2)  # the same person may not approve the second step too
    assert refused.value.rule == "one_step_per_person"
    assert service.approve(r.id, SEC2).state is State.ACTIVE
    rejected = [e.detail["rule"] for e in store.audit if e.event == "rejected"]
    assert rejected == ["not_this_step", "one_step_per_person"]


def test_a_lead_in_both_steps_still_approves_only_one(w):
    service = w.service
    r = service.request(REQ, "prod-write", "30m", "CHG-2")
    service.approve(r.id, LEAD1)
    with pytest.raises(NotAllowed, match="one step"):
        service.approve(r.id, LEAD1)


def test_a_decision_names_what_it_was_shown_for_and_a_stale_one_is_refused_and_audited(w):
    """A captured Approve click (for the request) replayed once an extension waits must not approve the extension."""
    service, store = w.service, w.store
    r = service.request(REQ, "db", "30m", "INC-1")
    assert decision_ref(r) == f"{r.id}:r"
    r = service.approve(f"{r.id}:r", LEAD1)
    r = service.extend(r.id, REQ, "10m")
    ask = decision_ref(r)
    assert ask == f"{r.id}:e{r.version}"  # the ask is numbered by the version it created
    for stale in (f"{r.id}:r", r.id, f"{r.id}:e{r.version + 1}"):
        with pytest.raises(StaleDecision, match="out of date"):
            service.approve(stale, LEAD2)
        with pytest.raises(StaleDecision):
            service.deny(stale, LEAD2)
    refusals = [e for e in store.audit if e.event == "rejected"]
    assert len(refusals) == 1 and refusals[0].detail["rule"] == "stale_decision"  # the first of the burst, in full
    w.clock.advance(timedelta(minutes=2))
    assert service.flush_refusals() == 1 and store.audit[-1].detail["repeated"] == 5  # the rest, counted
    assert store.get(r.id).extension_pending == timedelta(minutes=10)  # nothing was decided by the stale clicks
    assert service.approve(ask, LEAD2).duration == timedelta(minutes=40)
    with pytest.raises(AlreadyDecided):  # the same (now decided) button again: already decided, not "out of date"
        service.approve(ask, LEAD2)


def test_may_decide_answers_as_deny_would_and_writes_nothing(w):
    """The deny form opens only for whom `deny` would consider: the core's answer, asked read-only by the listener."""
    service, store = w.service, w.store
    r = service.request(REQ, "db", "30m", "INC-1")
    trail = len(store.audit)
    assert service.may_decide(f"{r.id}:r", LEAD1) and service.may_decide(r.id, LEAD2)
    refused = [(f"{r.id}:r", REQ), (f"{r.id}:r", BOSS), (f"{r.id}:e1", LEAD1), ("JIT-NOTHERE", LEAD1)]
    assert not any(service.may_decide(decision, actor) for decision, actor in refused)
    assert len(store.audit) == trail  # asking is not deciding: no event
    for decision, actor in refused:
        with pytest.raises((NotAllowed, StaleDecision, NotFound)):
            service.deny(decision, actor)
    r = service.extend(service.approve(r.id, LEAD1).id, REQ, "10m")
    ask = decision_ref(r)
    assert service.may_decide(ask, LEAD2) and not service.may_decide(ask, REQ) and not service.may_decide(f"{r.id}:r", LEAD2)
    service.deny(ask, LEAD2)
    assert not service.may_decide(ask, LEAD1)  # decided: the form would be for nothing
    late = service.request(DEV, "db", "30m", "INC-2")
    w.clock.advance(timedelta(hours=4))  # past pending_timeout, before any timer ran
    assert not service.may_decide(late.id, LEAD1)
    with pytest.raises(AlreadyDecided):
        service.deny(late.id, LEAD1)


def test_an_approver_approves_for_less_and_the_requester_sees_it() -> None:
    world = bootstrap(make_catalog())
    request = world.service.request(REQUESTER, "payments-read", "1h", "INC-1 look")
    active = world.service.approve(f"{request.id}:r", APPROVER_1, duration_text="15m")
    assert active.state is State.ACTIVE and active.duration == timedelta(minutes=15)
    assert active.expires_at == active.grant.issued_at + timedelta(minutes=15)
    approved = next(e for e in world.store.audit if e.event == "approved")
    assert (approved.detail["approved_for"], approved.detail["asked"]) == ("15m", "1h")
    assert ("told", (request.id, "approved")) in world.notifier.sent


@pytest.mark.parametrize(
    ("duration", "message"), [("30m", "only shortens"), ("2h", "only shortens"), ("0s", "is zero"), ("2m", "at least 5m")]
)
def test_approve_for_less_never_lengthens_nor_goes_below_the_minimum(duration: str, message: str) -> None:
    world = bootstrap(make_catalog())
    request = world.service.request(REQUESTER, "payments-write", "30m", "INC-1 look")
    with pytest.raises(InvalidRequest, match=message):
        world.service.approve(request.id, APPROVER_1, duration_text=duration)
    assert world.store.get(request.id).state is State.PENDING


def test_with_two_approvals_the_shortest_given_holds_and_a_later_start_window_shrinks() -> None:
    world = bootstrap(make_catalog())
    request = world.service.request(REQUESTER, "payments-write", "30m", "INC-1 x", start_text="13:00")
    first = world.service.approve(request.id, APPROVER_1, duration_text="10m")
    assert first.state is State.PENDING and first.duration == timedelta(minutes=10)
    approved = world.service.approve(request.id, APPROVER_3, duration_text="20m")
    assert approved.state is State.APPROVED and approved.duration == timedelta(minutes=10)
    assert approved.not_after == approved.starts_at + timedelta(minutes=10)
