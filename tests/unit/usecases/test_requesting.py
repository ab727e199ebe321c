"""Unit tests of `grants/usecases/requesting.py`: the checks a request meets, the tickets that justify it, a later
start, auto-approval, break-glass, budgets and nudges."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from grants.catalog import parse_catalog
from grants.domain import InvalidRequest, NotAllowed, State
from tests.catalogs import APPROVER_1, OUTSIDER, REQUESTER, make_catalog
from tests.fakes import bootstrap
from tests.unit.usecases.worlds import BOSS, DEV, LEAD1, OPEN, REQ, data, oncall_data, ticketed


def test_requested_event_holds_reason_and_issued_the_accessor(core):
    service, store = core.service, core.store
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
def test_bad_requests_store_nothing_and_notify_nobody(core, scope, duration, reason, field):
    service, store, notifier, timer = core.service, core.store, core.notifier, core.timer
    with pytest.raises(InvalidRequest) as refused:
        service.request(REQUESTER, scope, duration, reason)
    assert refused.value.context["field"] == field
    assert not store.requests and not store.audit and not notifier.sent and not timer.jobs


def test_not_a_requester_is_refused(core):
    service, store = core.service, core.store
    with pytest.raises(InvalidRequest, match="not among the requesters"):
        service.request(OUTSIDER, "payments-write", "10m", "INC-1")
    assert not store.requests


def test_second_open_request_for_same_scope_is_refused(core):
    service = core.service
    first = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    with pytest.raises(InvalidRequest, match=first.id):
        service.request(REQUESTER, "payments-read", "10m", "INC-2")


def test_nudge_once_per_interval(w):
    service, store, timer = w.service, w.store, w.timer
    r = service.request(REQ, "prod-write", "30m", "CHG-4")
    service.nudge(r.id, REQ)
    with pytest.raises(InvalidRequest, match="nudge again after"):
        service.nudge(r.id, REQ)
    with pytest.raises(NotAllowed):
        service.nudge(r.id, LEAD1)
    timer.clock.advance(timedelta(minutes=10))
    service.nudge(r.id, REQ)
    assert store.names().count("nudged") == 2


@pytest.mark.parametrize(
    ("requester", "duration", "auto"),
    [(DEV, "2h", True), (DEV, "2h1s", False), (LEAD1, "10m", False), (REQ, "1h", True)],
)
def test_auto_approval_caps(w, requester, duration, auto):
    service, store = w.service, w.store
    r = service.request(requester, "staging", duration, "")
    assert (r.state is State.ACTIVE) is auto
    if auto:
        approved = next(e for e in store.audit if e.event == "approved")
        assert approved.actor == "system" and approved.detail["auto_approve"] == "devs-on-staging"


def test_break_glass_attempt_without_the_right_is_audited(w):
    service, store = w.service, w.store
    with pytest.raises(InvalidRequest):
        service.break_glass(DEV, "db", "10m", "fire")
    assert store.audit[-1].event == "rejected" and store.audit[-1].detail["rule"] == "not_break_glass_eligible"
    assert store.audit[-1].actor == DEV and store.audit[-1].scope == "db"


def test_asking_for_a_scope_one_may_not_request_is_audited(w):
    core = bootstrap(
        parse_catalog(
            {
                **data(),
                "scopes": {
                    **data()["scopes"],
                    "leads-only": {"description": "x", "policies": ["p"], "requesters": ["group:leads"], "approvers": [BOSS]},
                },
            }
        )
    )
    with pytest.raises(InvalidRequest, match="not among the requesters"):
        core.service.request(REQ, "leads-only", "10m", "INC-1")
    refusal = core.store.audit[-1]
    assert (refusal.event, refusal.actor, refusal.scope, refusal.detail["rule"]) == (
        "rejected",
        REQ,
        "leads-only",
        "not_a_requester",
    )
    assert core.store.requests == {}


def test_a_person_has_a_budget_of_new_requests_and_a_burst_of_refusals_is_audited_once_then_counted(w):
    service, store, clock = w.service, w.store, w.clock
    for n in range(10):  # the default budget: 10 per 10m
        r = service.request(REQ, "db", "10m", f"INC-{n}")
        service.cancel(r.id, REQ)
    for _ in range(6):
        with pytest.raises(InvalidRequest, match="that is the limit"):
            service.request(REQ, "db", "10m", "INC-again")
    with pytest.raises(InvalidRequest, match="that is the limit"):
        service.break_glass(REQ, "db", "10m", "INC-fire")  # break-glass counts against the same budget
    limited = [e for e in store.audit if e.event == "rejected"]
    assert len(limited) == 1 and limited[0].detail["rule"] == "rate_limited" and limited[0].actor == REQ
    assert len(store.requests) == 10 and w.notifier.kinds().count("opened") == 10
    clock.advance(timedelta(minutes=2))
    assert service.flush_refusals() == 1
    summary = store.audit[-1]
    assert (summary.event, summary.detail["rule"], summary.detail["repeated"]) == ("rejected", "rate_limited", 6)
    clock.advance(timedelta(minutes=9))  # the window slid past the first requests
    assert service.request(REQ, "db", "10m", "INC-later").state is State.PENDING


def test_an_open_ticket_opens_the_request_with_its_evidence_and_a_comment() -> None:
    world, tracker = ticketed(None, OPEN)
    request = world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 rotate the key")
    assert request.state is State.PENDING and request.ticket == "jira:PAY-7"
    assert world.store.audit[0].detail["ticket"] == OPEN.evidence("jira")
    assert tracker.comments == [("PAY-7", f"jitbot {request.id}: requested payments-write for 10m by Slack user {REQUESTER}")]


@pytest.mark.parametrize(
    ("rule", "tickets", "reason", "message", "audited"),
    [
        ({"tracker": "jira"}, [], "PAY-7 x", "There is no ticket PAY-7 in jira; cite an existing one.", "ticket_missing"),
        ({"tracker": "jira"}, [replace(OPEN, open=False, state="Done")], "PAY-7 x", "PAY-7 is Done in jira; cite an open ticket.", "ticket_closed"),
        ({"tracker": "jira", "assignee_is_requester": True}, [replace(OPEN, assignee="acc-x", assignee_name="Xi")], "PAY-7 x",
         "PAY-7 is assigned to Xi, not you", "ticket_not_assigned"),
        ({"tracker": "jira", "assignee_is_requester": True}, [replace(OPEN, assignee=None, assignee_name=None)], "PAY-7 x",
         "PAY-7 is assigned to nobody, not you", "ticket_not_assigned"),
        ({"tracker": "jira"}, [OPEN], "no ticket at all", "`payments-write` needs a jira ticket in the reason, e.g. `PROJ-123", None),
    ],
)  # fmt: skip
def test_a_ticket_that_cannot_justify_the_request_is_refused(rule, tickets, reason, message, audited) -> None:
    world, tracker = ticketed(rule, *tickets)
    with pytest.raises(InvalidRequest) as refused:
        world.service.request(REQUESTER, "payments-write", "10m", reason)
    assert message in str(refused.value) and refused.value.context["field"] == "reason"
    assert not world.store.requests and not world.notifier.sent and not tracker.comments
    assert [e.detail["rule"] for e in world.store.audit if e.event == "rejected"] == ([audited] if audited else [])


def test_a_closed_ticket_passes_where_the_rule_does_not_ask_for_an_open_one() -> None:
    world, _ = ticketed({"tracker": "jira", "must_be_open": False}, replace(OPEN, open=False, state="Done"))
    assert world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x").ticket == "jira:PAY-7"


def test_assignee_is_requester_needs_the_requesters_account_in_the_catalog() -> None:
    world, _ = ticketed({"tracker": "jira", "assignee_is_requester": True}, OPEN)
    with pytest.raises(InvalidRequest, match="your Slack ID has no jira account in the catalog"):
        world.service.request(APPROVER_1, "payments-write", "10m", "PAY-7 x")


def test_the_tracker_down_fails_closed_for_a_required_ticket() -> None:
    world, tracker = ticketed(None, OPEN)
    tracker.down = True
    with pytest.raises(InvalidRequest, match=r"jira cannot be asked about PAY-7 right now \(connection refused\)") as refused:
        world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x")
    assert "nothing was requested" in str(refused.value)
    assert not world.store.requests
    assert [e.detail["rule"] for e in world.store.audit] == ["tracker_unavailable"]


def test_a_tracker_without_its_token_fails_closed_and_says_which_variable() -> None:
    world, _ = ticketed(None, OPEN)
    world.service.deps.trackers = {}
    with pytest.raises(InvalidRequest, match="JITBOT_TRACKER_JIRA_TOKEN is not set"):
        world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x")


def test_an_optional_ticket_is_checked_when_cited_and_recorded_unchecked_when_the_tracker_is_down() -> None:
    world, tracker = ticketed({"tracker": "jira", "required": False}, OPEN)
    assert world.service.request(REQUESTER, "payments-write", "10m", "just looking").ticket is None
    world.service.cancel(world.store.audit[0].request_id, REQUESTER)
    tracker.down = True
    request = world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x")
    assert request.ticket is None and world.store.audit[-1].detail["ticket"] == {
        "tracker": "jira",
        "key": "PAY-7",
        "checked": False,
    }


def test_nobody_is_on_call_without_a_source_so_on_call_rules_never_fire() -> None:
    world = bootstrap(parse_catalog(oncall_data(on_call={"schedule": "P1A2B3C"})))
    assert world.service.request(REQUESTER, "payments-read", "10m", "INC-1 x").state is State.PENDING


@pytest.mark.parametrize(
    ("text", "message"),
    [("25:00", "is not a start time"), ("2026-11-29T13:00", "is not a start time"), ("2026-11-29T11:00+00:00", "has passed"),
     ("2026-12-29T11:00+00:00", "at most 7 days ahead")],
)  # fmt: skip
def test_a_bad_start_is_refused_with_what_to_type(text: str, message: str) -> None:
    world = bootstrap(make_catalog())
    with pytest.raises(InvalidRequest, match=message) as refused:
        world.service.request(REQUESTER, "payments-read", "30m", "INC-1 deploy", start_text=text)
    assert refused.value.context["field"] == "start" and not world.store.requests
