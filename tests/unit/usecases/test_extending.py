"""Unit tests of `grants/usecases/extending.py`: self-service and approved extensions, their caps, and buttons shown for
an earlier ask."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grants.catalog import parse_catalog
from grants.domain import AlreadyDecided, ExtensionOffered, InvalidRequest, NotAllowed, StaleDecision, State, decision_ref
from tests.catalogs import APPROVER_1, make_catalog
from tests.fakes import bootstrap
from tests.unit.usecases.worlds import BOSS, DEV, LEAD1, LEAD2, REQ, SEC1, Directory, data, stale_refusals


def test_expiry_warning_and_self_service_extension_with_caps(w):
    service, store, issuer, notifier, timer = w.service, w.store, w.issuer, w.notifier, w.timer
    r = service.request(DEV, "staging", "1h", "")
    timer.advance(timedelta(minutes=50))
    assert ("told", (r.id, "expiring")) in notifier.sent
    old = r.grant.handle.id
    r = service.extend(r.id, DEV, "1h")
    assert r.grant.extensions == 1 and r.duration == timedelta(hours=2) and r.grant.handle.id != old and old not in issuer.live
    assert r.expires_at == r.grant.issued_at + timedelta(hours=2)
    with pytest.raises(InvalidRequest, match="at most 1h"):
        service.extend(r.id, DEV, "2h")  # the 3h total cap
    # The default (1h) fits the 3h scope cap, but this grant was approved by a rule capped at 2h: past the
    # rule's cap a human must agree (issue 8: self-extension must not turn a 2h rule into an unapproved 3h+ grant).
    r = service.extend(r.id, DEV, None)
    assert r.extension_pending == timedelta(hours=1) and store.names()[-1] == "extension_requested"
    r = service.approve(decision_ref(service.get(r.id)), LEAD1)
    assert r.duration == timedelta(hours=3) and r.extension_pending is None
    with pytest.raises(InvalidRequest, match="no room left"):
        service.extend(r.id, DEV, "1m")
    timer.advance(timedelta(hours=2, minutes=10))
    assert store.get(r.id).state is State.EXPIRED and not issuer.live
    assert store.names().count("extended") == 2


def test_extension_needing_approval_and_second_request_offers_it(w):
    service, notifier = w.service, w.notifier
    r = service.request(REQ, "db", "30m", "INC-1")
    service.approve(r.id, LEAD1)
    with pytest.raises(ExtensionOffered, match=f"already hold `db` \\({r.id}\\)"):
        service.request(REQ, "db", "30m", "INC-1 again")
    pending = service.extend(r.id, REQ, "20m")
    assert pending.extension_pending == timedelta(minutes=20) and ("notice", (r.id, [LEAD1, LEAD2], "extension")) in notifier.sent
    assert [x.id for x in service.waiting_on(LEAD2)] == [r.id]
    with pytest.raises(NotAllowed):
        service.approve(decision_ref(service.get(r.id)), REQ)
    extended = service.approve(decision_ref(service.get(r.id)), LEAD2)
    assert extended.grant.extensions == 1 and extended.duration == timedelta(minutes=50) and extended.extension_pending is None
    with pytest.raises(InvalidRequest, match="no room"):
        service.extend(r.id, REQ, "5m")  # max_extensions = 1


def test_extension_can_be_denied(w):
    service, store = w.service, w.store
    r = service.request(REQ, "db", "30m", "INC-1")
    service.approve(r.id, LEAD1)
    service.extend(r.id, REQ, "10m")
    denied = service.deny(decision_ref(service.get(r.id)), LEAD2, "enough")
    assert denied.state is State.ACTIVE and denied.extension_pending is None and store.names()[-1] == "extension_denied"


def test_self_extension_cannot_carry_an_auto_approved_grant_past_the_rules_cap(w):
    service, store, issuer = w.service, w.store, w.issuer
    r = service.request(DEV, "staging", "2h", "")  # auto-approved up to the rule's 2h
    assert r.state is State.ACTIVE and r.decided_by == "system"
    r = service.extend(r.id, DEV, "30m")  # the scope would allow it without approval, the rule does not
    assert r.extension_pending == timedelta(minutes=30) and r.duration == timedelta(hours=2)
    with pytest.raises(NotAllowed):
        service.approve(decision_ref(service.get(r.id)), DEV)  # and never by the requester
    r = service.deny(decision_ref(service.get(r.id)), LEAD2)
    assert r.extension_pending is None and r.expires_at == r.grant.issued_at + timedelta(hours=2)
    assert store.names().count("extended") == 0 and len(issuer.live) == 1


def test_only_an_approver_of_the_scope_decides_an_extension_not_an_escalation_contact():
    catalog = data()
    catalog["scopes"]["prod-write"]["max_extensions"] = 1
    core = bootstrap(parse_catalog(catalog), directory=Directory())
    service, store = core.service, core.store
    r = service.request(REQ, "prod-write", "30m", "CHG-9")
    core.timer.advance(timedelta(minutes=31))  # escalated: BOSS may now approve the waiting step
    service.approve(r.id, LEAD1)
    r = service.approve(r.id, BOSS)
    assert r.state is State.ACTIVE
    r = service.extend(r.id, REQ, "10m")
    with pytest.raises(NotAllowed) as refused:
        service.approve(
            decision_ref(service.get(r.id)), BOSS
        )  # escalation let BOSS decide the request, not the grant's extensions
    assert refused.value.rule == "not_an_approver" and store.audit[-1].event == "rejected"
    with pytest.raises(NotAllowed):
        service.deny(decision_ref(service.get(r.id)), BOSS)
    assert service.approve(decision_ref(service.get(r.id)), SEC1).duration == timedelta(
        minutes=40
    )  # an approver of the scope may


def test_an_approve_shown_for_a_denied_extension_never_approves_the_next_ask(w):
    """A denied 10m ask moves no counter of the grant: the buttons of the next ask (4 h, say) must still differ,
    or a stale message or a captured click approves an ask nobody looked at."""
    service, store = w.service, w.store
    r = service.approve(service.request(REQ, "db", "30m", "INC-1").id, LEAD1)
    first = decision_ref(service.extend(r.id, REQ, "10m"))
    service.deny(first, LEAD2, "not now")
    second = decision_ref(service.extend(r.id, REQ, "30m"))
    assert second != first
    for click in (service.approve, service.deny):
        with pytest.raises(StaleDecision, match="out of date"):
            click(first, LEAD2)
    assert stale_refusals(store) == [(LEAD2, "approve")]  # the first of the burst in full, the deny counted with it
    w.clock.advance(timedelta(minutes=2))
    assert service.flush_refusals() == 1 and store.audit[-1].detail["repeated"] == 1
    assert store.get(r.id).extension_pending == timedelta(minutes=30) and store.get(r.id).duration == timedelta(minutes=30)
    assert service.approve(second, LEAD2).duration == timedelta(hours=1)


def test_an_approve_shown_for_a_failed_extension_never_approves_the_next_ask(w):
    service, store, issuer = w.service, w.store, w.issuer
    r = service.approve(service.request(REQ, "db", "30m", "INC-1").id, LEAD1)
    first = decision_ref(service.extend(r.id, REQ, "10m"))
    issuer.down = True
    assert service.approve(first, LEAD2).extension_pending is None and store.names()[-1] == "extension_failed"
    issuer.down = False
    second = decision_ref(service.extend(r.id, REQ, "30m"))
    with pytest.raises(StaleDecision):
        service.approve(first, LEAD1)
    assert stale_refusals(store) == [(LEAD1, "approve")]
    assert store.get(r.id).extension_pending == timedelta(minutes=30)
    assert service.approve(second, LEAD1).duration == timedelta(hours=1)


def test_an_ask_replaced_between_the_check_and_the_write_is_not_decided_by_the_old_button(w):
    """The race: the click's ask is denied and a new one asked after the click was read but before it is written.
    The decision is checked on the row the compare-and-swap writes over, so the old button decides nothing."""
    service, store = w.service, w.store
    r = service.approve(service.request(REQ, "db", "30m", "INC-1").id, LEAD1)
    first = decision_ref(service.extend(r.id, REQ, "10m"))
    real_get, raced = store.get, []

    def get_then_race(request_id):
        seen = real_get(request_id)
        if not raced:  # right after the click's first read, someone else denies and the requester asks again
            raced.append(True)
            service.deny(first, LEAD1, "too little")
            service.extend(request_id, REQ, "30m")
        return seen

    store.get = get_then_race
    with pytest.raises((StaleDecision, AlreadyDecided)):
        service.approve(first, LEAD2)
    store.get = real_get
    now = store.get(r.id)
    assert now.extension_pending == timedelta(minutes=30) and now.duration == timedelta(minutes=30)
    assert "extended" not in store.names()


def test_an_extension_is_approved_as_asked() -> None:
    world = bootstrap(make_catalog())
    with pytest.raises(InvalidRequest, match="approved as asked"):
        world.service.approve("JIT-AAAAAAAA:e3", APPROVER_1, duration_text="5m")
