"""Refusal flooding: a burst of any refusal is audited once in full, then counted, on the fake and the real stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grants.audit import AuditQuery, verify
from grants.domain import AuditEvent, InvalidRequest, NotAllowed, StaleDecision
from tests.catalogs import APPROVER_1, APPROVER_2, OUTSIDER, REQUESTER, make_catalog
from tests.databases import fresh_store
from tests.fakes import Core, bootstrap

PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----"


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
def core(request, tmp_path):
    if request.param == "fake":
        yield bootstrap(make_catalog())
        return
    with fresh_store(request.param, tmp_path) as store:
        yield bootstrap(make_catalog(), store=store)  # type: ignore[arg-type]


def trail(core: Core) -> list[AuditEvent]:
    return [e for e in core.store.events(AuditQuery()) if e.event == "rejected"]


def test_a_member_cannot_flood_the_trail_with_refused_requests(core: Core):
    for _ in range(50):  # a scope OUTSIDER may not request: before the fix, 50 hash-chained rows
        with pytest.raises(InvalidRequest):
            core.service.request(OUTSIDER, "payments-write", "10m", "INC-1 let me in")
    for _ in range(20):
        with pytest.raises(InvalidRequest):
            core.service.register_ssh_key(OUTSIDER, PRIVATE_KEY)
    first = trail(core)
    assert [(e.actor, e.detail["rule"], e.scope) for e in first] == [
        (OUTSIDER, "not_a_requester", "payments-write"),
        (OUTSIDER, "private_key_pasted", None),
    ]
    core.clock.advance(timedelta(seconds=30))
    assert core.service.flush_refusals() == 0  # the burst is still going: nothing is written yet
    core.clock.advance(timedelta(minutes=1))
    assert core.service.flush_refusals() == 2
    counted = {e.detail["rule"]: e for e in trail(core)[2:]}
    assert counted["not_a_requester"].detail["repeated"] == 49 and counted["not_a_requester"].scope == "payments-write"
    assert counted["private_key_pasted"].detail["repeated"] == 19
    assert verify(core.store.events(AuditQuery())).intact


def test_security_refusals_are_audited_in_full_once_per_burst_for_each_request(core: Core):
    one = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    two = core.service.request(APPROVER_1, "payments-read", "10m", "INC-2")
    for _ in range(10):
        for target in (one, two):
            with pytest.raises(NotAllowed):
                core.service.approve(target.id, OUTSIDER)
        with pytest.raises(NotAllowed):
            core.service.approve(one.id, REQUESTER)  # self-approval
        with pytest.raises(StaleDecision):
            core.service.approve(f"{two.id}:e1", APPROVER_2)  # an approver's click for a decision it was not shown for
    full = [(e.actor, e.detail["rule"], e.request_id) for e in trail(core)]
    assert full == [
        (OUTSIDER, "not_an_approver", one.id),
        (OUTSIDER, "not_an_approver", two.id),
        (REQUESTER, "self_approval", one.id),
        (APPROVER_2, "stale_decision", two.id),
    ]
    core.clock.advance(timedelta(minutes=2))
    assert core.service.flush_refusals() == 4
    counted = trail(core)[4:]
    assert sorted((e.request_id, e.detail["rule"], e.detail["repeated"]) for e in counted) == sorted(
        [
            (one.id, "not_an_approver", 9),
            (two.id, "not_an_approver", 9),
            (one.id, "self_approval", 9),
            (two.id, "stale_decision", 9),
        ]
    )
    assert all(e.subject in (REQUESTER, APPROVER_1) for e in counted)  # on the request's own trail, about its requester
    with pytest.raises(NotAllowed):  # a new burst after the quiet: audited in full again
        core.service.approve(one.id, OUTSIDER)
    assert trail(core)[-1].detail == {"action": "approve", "rule": "not_an_approver"}
