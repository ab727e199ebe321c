"""The Jira and PagerDuty adapters against stand-ins that check every request and response against the vendors'
official OpenAPI descriptions (no Jira or PagerDuty server can run here), and the rules they feed, end to end in the
core: tickets from Jira, on-call principals and on-call auto-approval bounded by the shift."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from grants.adapters.context.jira import JiraTracker
from grants.adapters.context.pagerduty import PagerDutyOnCall
from grants.catalog import parse_catalog
from grants.domain import InvalidRequest, NotAllowed, State
from grants.oncall import OnCallUnavailable
from grants.tickets import TrackerUnavailable
from tests.catalogs import APPROVER_1, APPROVER_3, REQUESTER, catalog_data
from tests.fakes import Core, FakeClock, bootstrap
from tests.vendor_standins import JiraStandIn, OnCallEntry, PagerDutyStandIn

SCHEDULE = "P1A2B3C"
PD_USER = "PREQ001"


@pytest.fixture
def jira() -> Iterator[JiraStandIn]:
    with JiraStandIn() as standin:
        yield standin
    assert standin.violations == []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pagerduty(clock: FakeClock) -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn(now=clock.now) as standin:
        yield standin
    assert standin.violations == []


def test_jira_issues_open_done_and_missing_and_comments_in_adf(jira: JiraStandIn) -> None:
    jira.people["acc-1"] = "Rita Requester"
    jira.add("PAY-7", assignee="acc-1")
    tracker = JiraTracker(jira.url, "jitbot@example.test:jira-api-token-1")
    ticket = tracker.ticket("PAY-7")
    assert ticket is not None and ticket.open and ticket.state == "In Progress"
    assert (ticket.assignee, ticket.assignee_name, ticket.url) == ("acc-1", "Rita Requester", f"{jira.url}/browse/PAY-7")
    assert tracker.ticket("PAY-404") is None
    tracker.comment("PAY-7", "jitbot JIT-1: requested payments-write for 10m")
    assert jira.issues["PAY-7"].comments == [
        {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "jitbot JIT-1: requested payments-write for 10m"}]}]}
    ]  # fmt: skip
    jira.close("PAY-7")
    closed = tracker.ticket("PAY-7")
    assert closed is not None and not closed.open and closed.state == "Done"
    assert ("GET", "/rest/api/3/issue/PAY-7?fields=status%2Cassignee") in jira.calls


def test_jira_refusing_the_token_or_failing_is_unavailable_never_no_ticket(jira: JiraStandIn) -> None:
    jira.add("PAY-7")
    with pytest.raises(TrackerUnavailable, match="refused the bot's token"):
        JiraTracker(jira.url, "jitbot@example.test:wrong").ticket("PAY-7")
    jira.down = True
    with pytest.raises(TrackerUnavailable, match="503"):
        JiraTracker(jira.url, "jitbot@example.test:jira-api-token-1").ticket("PAY-7")


def test_the_stand_ins_refuse_what_the_vendors_descriptions_refuse(jira: JiraStandIn, pagerduty: PagerDutyStandIn) -> None:
    """The check is live: a request off the contract is answered 400 and recorded (then cleared for the fixtures)."""
    jira.add("PAY-7")
    answer = requests.post(f"{jira.url}/rest/api/3/issue/PAY-7/comment", data="not json", headers={"Content-Type": "application/json"}, timeout=5)  # fmt: skip
    assert answer.status_code == 400 and len(jira.violations) == 1
    answer = requests.get(f"{pagerduty.url}/oncalls", params={"include[]": "nonsense"}, timeout=5)
    assert answer.status_code == 400 and pagerduty.violations
    jira.violations.clear()
    pagerduty.violations.clear()


def test_pagerduty_shifts_are_read_cached_and_unavailable_when_refused(pagerduty: PagerDutyStandIn, clock: FakeClock) -> None:
    now = clock.now()
    pagerduty.entries += [
        OnCallEntry(PD_USER, "Rita Requester", SCHEDULE, 1, now - timedelta(hours=1), now + timedelta(hours=3)),
        OnCallEntry("PSEC002", "Sam Second", SCHEDULE, 2, now - timedelta(hours=1), None),
        OnCallEntry("POTHER3", "Olga Other", "PZZZZZ9", 1, now - timedelta(hours=1), now + timedelta(hours=1)),
        OnCallEntry("PPAST04", "Pat Past", SCHEDULE, 1, now - timedelta(hours=5), now - timedelta(hours=1)),
    ]
    source = PagerDutyOnCall(pagerduty.url, "pd-token-1", cache_seconds=60)
    shifts = source.on_call(SCHEDULE)
    assert [(s.user, s.escalation_level, s.end) for s in shifts] == [(PD_USER, 1, now + timedelta(hours=3)), ("PSEC002", 2, None)]
    assert shifts[0].evidence()["shift_end"] == (now + timedelta(hours=3)).isoformat()
    calls = len(pagerduty.calls)
    assert source.on_call(SCHEDULE) == shifts and len(pagerduty.calls) == calls  # cached
    assert PagerDutyOnCall(pagerduty.url, "pd-token-1", cache_seconds=0).on_call(SCHEDULE) == shifts
    with pytest.raises(OnCallUnavailable, match="401"):
        PagerDutyOnCall(pagerduty.url, "wrong", cache_seconds=0).on_call(SCHEDULE)
    pagerduty.down = True
    with pytest.raises(OnCallUnavailable, match="503"):
        PagerDutyOnCall(pagerduty.url, "pd-token-1", cache_seconds=0).on_call(SCHEDULE)


def core_with_vendors(clock: FakeClock, pagerduty: PagerDutyStandIn, jira: JiraStandIn, **scope_edits: Any) -> Core:
    data = copy.deepcopy(catalog_data())
    data["settings"]["oncall"] = {"url": pagerduty.url, "accounts": {REQUESTER: PD_USER, APPROVER_3: "PAPPR03"}}  # type: ignore[index]
    data["settings"]["trackers"] = {"jira": {"kind": "jira", "url": jira.url}}  # type: ignore[index]
    data["scopes"]["payments-read"].update(scope_edits)  # type: ignore[index,attr-defined]
    core = bootstrap(parse_catalog(data), clock=clock)
    core.service.deps.oncall = PagerDutyOnCall(pagerduty.url, "pd-token-1", cache_seconds=0)
    core.service.deps.trackers = {"jira": JiraTracker(jira.url, "jitbot@example.test:jira-api-token-1")}
    return core


ON_CALL_RULE = {"name": "on call for payments", "on_call": {"schedule": SCHEDULE, "max_escalation_level": 1},
                "max_duration": "1h", "end_with_shift": True}  # fmt: skip


def test_on_call_auto_approval_rests_on_the_shift_and_never_outlives_it(clock, pagerduty, jira) -> None:
    now = clock.now()
    pagerduty.entries.append(
        OnCallEntry(PD_USER, "Rita Requester", SCHEDULE, 1, now - timedelta(hours=7), now + timedelta(minutes=20))
    )
    core = core_with_vendors(clock, pagerduty, jira, auto_approve=[ON_CALL_RULE], max_extensions=1)
    active = core.service.request(REQUESTER, "payments-read", "45m", "INC-1 paged")
    assert active.state is State.ACTIVE and active.decided_by == "system" and active.duration == timedelta(minutes=20)
    assert active.expires_at == now + timedelta(minutes=20) and active.not_after == now + timedelta(minutes=20)
    approved = next(e for e in core.store.audit if e.event == "approved")
    assert approved.detail["auto_approve"] == "on call for payments"
    assert approved.detail["on_call"] == {"schedule": SCHEDULE, "user": PD_USER, "user_name": "Rita Requester", "escalation_level": 1,
                                          "shift_start": (now - timedelta(hours=7)).isoformat(), "shift_end": (now + timedelta(minutes=20)).isoformat()}  # fmt: skip
    issued = next(e for e in core.store.audit if e.event == "issued")
    assert issued.detail["expires_at"] == (now + timedelta(minutes=20)).isoformat()
    with pytest.raises(InvalidRequest, match="ends with the shift or window that allowed it"):
        core.service.extend(active.id, REQUESTER, "10m")
    core.timer.advance(timedelta(minutes=20))
    assert core.store.get(active.id).state is State.EXPIRED


@pytest.mark.parametrize("why", ["level_too_high", "not_on_call", "pagerduty_down", "shift_of_someone_else"])
def test_on_call_auto_approval_does_not_fire_without_a_qualifying_shift(clock, pagerduty, jira, why: str) -> None:
    now = clock.now()
    user, level = (PD_USER, 2) if why == "level_too_high" else ("PAPPR03" if why == "shift_of_someone_else" else PD_USER, 1)
    if why != "not_on_call":
        pagerduty.entries.append(
            OnCallEntry(user, "Someone", SCHEDULE, level, now - timedelta(hours=1), now + timedelta(hours=1))
        )
    pagerduty.down = why == "pagerduty_down"
    core = core_with_vendors(clock, pagerduty, jira, auto_approve=[ON_CALL_RULE])
    request = core.service.request(REQUESTER, "payments-read", "30m", "INC-1 paged")
    assert request.state is State.PENDING  # to the approvers as usual: never wider access on a guess


def test_oncall_principals_resolve_to_who_is_on_call_now(clock, pagerduty, jira) -> None:
    now = clock.now()
    pagerduty.entries.append(OnCallEntry("PAPPR03", "Cleo", SCHEDULE, 1, now - timedelta(hours=1), now + timedelta(hours=1)))
    core = core_with_vendors(clock, pagerduty, jira, approvers=[f"oncall:{SCHEDULE}"])
    request = core.service.request(REQUESTER, "payments-read", "30m", "INC-1 look")
    assert core.service.people.approvers(core.service.catalog.scopes["payments-read"]) == {APPROVER_3}
    with pytest.raises(NotAllowed):
        core.service.approve(request.id, APPROVER_1)
    assert core.service.approve(request.id, APPROVER_3).state is State.ACTIVE
    pagerduty.down = True
    assert core.service.people.approvers(core.service.catalog.scopes["payments-read"]) == frozenset()


def test_a_jira_ticket_is_checked_and_commented_through_the_core(clock, pagerduty, jira) -> None:
    jira.add("PAY-7")
    jira.add("PAY-8")
    jira.close("PAY-8")
    core = core_with_vendors(clock, pagerduty, jira, ticket={"tracker": "jira", "end_when_closed": True})
    request = core.service.request(REQUESTER, "payments-read", "30m", "PAY-7 look")
    assert request.ticket == "jira:PAY-7" and core.store.audit[0].detail["ticket"]["state"] == "In Progress"
    assert len(jira.issues["PAY-7"].comments) == 1
    with pytest.raises(InvalidRequest, match="PAY-8 is Done in jira"):
        core.service.request(APPROVER_3, "payments-read", "30m", "PAY-8 look")


WINDOW = ("customfield_10022", "customfield_10023")  # a site's planned start and end of a change


def test_a_jira_change_window_admits_and_bounds_the_grant_or_refuses(clock: FakeClock, jira: JiraStandIn) -> None:
    """Jira has no standard change window: the tracker names the two fields (date-time or date) that hold it."""
    data = copy.deepcopy(catalog_data())
    data["settings"]["trackers"] = {"jira": {"kind": "jira", "url": jira.url, "window_fields": list(WINDOW)}}  # type: ignore[index]
    scope = data["scopes"]["payments-write"]  # type: ignore[index]
    scope["reason_pattern"] = ""
    scope["ticket"] = {"tracker": "jira", "within_window": True}
    core = bootstrap(parse_catalog(data), clock=clock)
    core.service.deps.trackers = {"jira": JiraTracker(jira.url, "jitbot@example.test:jira-api-token-1", window_fields=WINDOW)}
    now = clock.now()
    start, end = now - timedelta(minutes=10), now + timedelta(minutes=12)
    # Jira's date-time format: milliseconds and an offset without a colon, here not UTC.
    as_jira = "%Y-%m-%dT%H:%M:%S.000+0100"
    jira.add(
        "CHG-1",
        custom={
            WINDOW[0]: (start + timedelta(hours=1)).strftime(as_jira),
            WINDOW[1]: (end + timedelta(hours=1)).strftime(as_jira),
        },
    )
    request = core.service.request(REQUESTER, "payments-write", "30m", "CHG-1 deploy")
    assert request.not_after == end.replace(microsecond=0)  # the window's end bounds the 30 minutes asked for
    assert core.store.audit[0].detail["ticket"]["window"] == [
        start.replace(microsecond=0).isoformat(),
        end.replace(microsecond=0).isoformat(),
    ]
    core.service.cancel(request.id, REQUESTER)
    yesterday = (now - timedelta(days=1)).date().isoformat()
    jira.add("CHG-2", custom={WINDOW[0]: yesterday, WINDOW[1]: yesterday})  # date fields: whole days, as Redmine's
    with pytest.raises(InvalidRequest, match=r"CHG-2's change window is .* UTC; ask within it"):
        core.service.request(REQUESTER, "payments-write", "30m", "CHG-2 deploy")
    jira.add("CHG-3")
    with pytest.raises(InvalidRequest, match="CHG-3 carries no change window"):
        core.service.request(REQUESTER, "payments-write", "30m", "CHG-3 deploy")
    jira.add("CHG-4", custom={WINDOW[0]: 12, WINDOW[1]: "soon"})
    with pytest.raises(InvalidRequest, match="cannot be asked about CHG-4"):
        core.service.request(REQUESTER, "payments-write", "30m", "CHG-4 deploy")
    rules = [e.detail.get("rule") for e in core.store.audit if e.event == "rejected"]
    assert rules == ["outside_window", "ticket_no_window", "tracker_unavailable"]
