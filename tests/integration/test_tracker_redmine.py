"""The Redmine adapter and the ticket rules at request time, against Debian's real Redmine on loopback."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta

import pytest

from grants.adapters.context.redmine import RedmineTracker
from grants.audit import AuditQuery
from grants.catalog import parse_catalog
from grants.domain import InvalidRequest, State
from grants.tickets import TrackerUnavailable
from tests.catalogs import REQUESTER, catalog_data
from tests.fakes import Core, bootstrap
from tests.redmine_fixtures import Redmine, redmine  # noqa: F401

pytestmark = pytest.mark.timeout(300)


def test_the_adapter_reads_open_closed_and_missing_issues_and_adds_notes(redmine: Redmine) -> None:  # noqa: F811
    tracker = RedmineTracker(redmine.url, redmine.api_key)
    number = redmine.issue("replay refunds")
    ticket = tracker.ticket(str(number))
    assert ticket is not None and ticket.open and ticket.state == "New" and ticket.key == str(number)
    assert ticket.url == f"{redmine.url}/issues/{number}"
    assert tracker.ticket("999999") is None and tracker.ticket("not-a-number") is None
    tracker.comment(str(number), "jitbot JIT-TEST: requested payments-write for 15m")
    assert redmine.notes(number) == ["jitbot JIT-TEST: requested payments-write for 15m"]
    redmine.close(number)
    closed = tracker.ticket(str(number))
    assert closed is not None and not closed.open and closed.state == "Closed"
    times = []
    for _ in range(10):
        started = time.perf_counter()
        tracker.ticket(str(number))
        times.append(time.perf_counter() - started)
    print(f"redmine lookup median {sorted(times)[5] * 1000:.1f} ms")  # measured, not asserted: the machine is shared


def test_a_wrong_key_or_a_dead_tracker_is_unavailable_never_no_ticket(redmine: Redmine) -> None:  # noqa: F811
    number = str(redmine.issue("anything"))
    with pytest.raises(TrackerUnavailable, match="refused the bot's API key"):
        RedmineTracker(redmine.url, "0" * 40).ticket(number)
    with pytest.raises(TrackerUnavailable, match="did not answer"):
        RedmineTracker("http://127.0.0.1:9", redmine.api_key, timeout=2).ticket(number)


def core_with_redmine(redmine: Redmine, **rule: object) -> Core:  # noqa: F811
    data = copy.deepcopy(catalog_data())
    data["settings"]["trackers"] = {
        "ops": {"kind": "redmine", "url": redmine.url, "accounts": {REQUESTER: str(rule.pop("account", "0"))}}
    }  # type: ignore[index]
    scope = data["scopes"]["payments-write"]  # type: ignore[index]
    scope["reason_pattern"] = ""
    scope["ticket"] = {"tracker": "ops", **rule}
    core = bootstrap(parse_catalog(data))
    core.service.deps.trackers = {"ops": RedmineTracker(redmine.url, redmine.api_key)}
    return core


def test_an_open_ticket_is_granted_with_its_evidence_and_a_comment(redmine: Redmine) -> None:  # noqa: F811
    dana = redmine.user("dana")
    number = redmine.issue("rotate the payments key", assigned_to=dana)
    core = core_with_redmine(redmine, assignee_is_requester=True, account=dana)
    request = core.service.request(REQUESTER, "payments-write", "10m", f"#{number} rotate the key")
    assert request.state is State.PENDING and request.ticket == f"ops:{number}"
    evidence = core.store.audit[0].detail["ticket"]
    assert evidence == {
        "tracker": "ops", "key": str(number), "state": "New", "open": True, "assignee": str(dana),
        "assignee_name": "Dana Test", "url": f"{redmine.url}/issues/{number}",
    }  # fmt: skip
    assert redmine.notes(number) == [f"jitbot {request.id}: requested payments-write for 10m by Slack user {REQUESTER}"]


@pytest.mark.parametrize("case", ["missing", "closed", "not_assigned", "not_cited", "tracker_down"])
def test_a_ticket_that_cannot_justify_the_request_is_refused_and_audited(redmine: Redmine, case: str) -> None:  # noqa: F811
    someone = redmine.user(f"sam{case.replace('_', '')}")
    number = redmine.issue("a ticket", assigned_to=someone)
    core = core_with_redmine(redmine, assignee_is_requester=case == "not_assigned", account=someone + 1000)
    reason = f"#{number} fix it"
    if case == "missing":
        reason = "#987654 fix it"
    elif case == "closed":
        redmine.close(number)
    elif case == "not_cited":
        reason = "fix it, no ticket"
    elif case == "tracker_down":
        core.service.deps.trackers = {"ops": RedmineTracker("http://127.0.0.1:9", redmine.api_key, timeout=2)}
    with pytest.raises(InvalidRequest) as refused:
        core.service.request(REQUESTER, "payments-write", "10m", reason)
    expected, rule = {
        "missing": ("There is no ticket #987654 in ops", "ticket_missing"),
        "closed": (f"#{number} is Closed in ops; cite an open ticket", "ticket_closed"),
        "not_assigned": (f"#{number} is assigned to Sam", "ticket_not_assigned"),
        "not_cited": ("`payments-write` needs a ops ticket in the reason, e.g. `#123", None),
        "tracker_down": (f"ops cannot be asked about #{number} right now", "tracker_unavailable"),
    }[case]
    assert expected in str(refused.value)
    assert not core.store.requests and not core.notifier.sent
    assert redmine.notes(number) == []
    rules = [e.detail.get("rule") for e in core.store.events(AuditQuery()) if e.event == "rejected"]
    assert rules == ([rule] if rule else [])


def test_a_tickets_change_window_admits_and_bounds_the_grant_or_refuses(redmine: Redmine) -> None:  # noqa: F811
    core = core_with_redmine(redmine, within_window=True)
    today = core.clock.now().date()
    inside = redmine.issue("change", start_date=f"{today}", due_date=f"{today}")
    request = core.service.request(REQUESTER, "payments-write", "30m", f"#{inside} deploy")
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert request.not_after == end and core.store.audit[0].detail["ticket"]["window"] == [
        datetime.combine(today, datetime.min.time(), tzinfo=UTC).isoformat(), end.isoformat(),
    ]  # fmt: skip
    core.service.cancel(request.id, REQUESTER)
    past = redmine.issue("old change", start_date=f"{today - timedelta(days=3)}", due_date=f"{today - timedelta(days=2)}")
    with pytest.raises(InvalidRequest, match=f"#{past}'s change window is .* UTC; ask within it"):
        core.service.request(REQUESTER, "payments-write", "30m", f"#{past} deploy")
    undated = redmine.issue("no window")
    with pytest.raises(InvalidRequest, match=f"#{undated} carries no change window"):
        core.service.request(REQUESTER, "payments-write", "30m", f"#{undated} deploy")
    rules = [e.detail.get("rule") for e in core.store.events(AuditQuery()) if e.event == "rejected"]
    assert rules == ["outside_window", "ticket_no_window"]
