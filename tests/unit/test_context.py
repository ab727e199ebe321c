"""Approvals bound to context: the catalog's trackers and ticket rules, and the rules at request time (fakes)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bot import slack_catalog
from grants.catalog import CatalogError, parse_catalog
from grants.context_catalog import cited_ticket
from grants.domain import InvalidRequest, State
from grants.tickets import Ticket
from tests.catalogs import APPROVER_1, APPROVER_3, REQUESTER, catalog_data, make_catalog
from tests.fakes import Core, FakeTracker, bootstrap

OPEN = Ticket("PAY-7", "In Progress", True, "acc-req", "Rita Requester", "https://jira.test/browse/PAY-7")


def data_with(rule: dict[str, Any] | None = None, trackers: dict[str, Any] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(catalog_data())
    data["settings"]["trackers"] = trackers if trackers is not None else {"jira": {"kind": "jira", "url": "https://jira.test", "accounts": {REQUESTER: "acc-req"}}}  # type: ignore[index]  # fmt: skip
    scope = data["scopes"]["payments-write"]  # type: ignore[index]
    scope["reason_pattern"] = ""
    scope["ticket"] = rule if rule is not None else {"tracker": "jira", "end_when_closed": True}
    return data


def core(rule: dict[str, Any] | None = None, *tickets: Ticket) -> tuple[Core, FakeTracker]:
    made = bootstrap(parse_catalog(data_with(rule)))
    tracker = FakeTracker(*tickets)
    made.service.deps.trackers = {"jira": tracker}
    return made, tracker


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(CatalogError) as failed:
        slack_catalog.parse_catalog(data)  # as `jitbot check` does: an account's Slack user ID is the Slack side's check
    return failed.value.problems


def test_check_names_every_tracker_and_ticket_problem_at_once() -> None:
    data = data_with({"tracker": "jra", "required": False, "end_when_closed": True}, {"Bad-Name": {"kind": "jira", "url": "jira.test", "accounts": {"alice": "x"}}})  # fmt: skip
    found = problems(data)
    assert (
        "settings.trackers.Bad-Name: tracker names use lowercase letters, digits and `_` (it names JITBOT_TRACKER_<NAME>_TOKEN)"
        in found
    )
    assert "settings.trackers.Bad-Name.url: `jira.test` is not a base URL such as https://tracker.example.com" in found
    assert "settings.trackers.Bad-Name.accounts: `alice` is not a Slack user ID (U…)" in found
    assert any(p.startswith("scopes.payments-write.ticket.tracker: unknown tracker `jra`") for p in found)
    assert any(p.startswith("scopes.payments-write.ticket.end_when_closed: needs `required = true`") for p in found)


def test_check_refuses_unknown_keys_and_kinds_of_trackers() -> None:
    found = problems(data_with({"tracker": "jira", "closed_ok": True}, {"jira": {"kind": "servicenow", "url": "https://x.test"}}))
    assert any(p.startswith("settings.trackers.jira.kind:") for p in found)
    assert "scopes.payments-write.ticket.closed_ok: unknown key; check the spelling against the catalog reference" in found


@pytest.mark.parametrize(
    ("kind", "reason", "key"),
    [("jira", "PAY-7 rotate", "PAY-7"), ("jira", "see pay-7", None), ("jira", "INC-0 x", None), ("redmine", "fixes #42 now", "42"),
     ("redmine", "issue&#42;", None), ("redmine", "no ticket", None), ("jira", "ABCDEFGHIJK-1 too long a project", None)],
)  # fmt: skip
def test_a_reason_cites_a_ticket_the_way_its_tracker_names_them(kind: str, reason: str, key: str | None) -> None:
    assert cited_ticket(kind, reason) == key


def test_an_open_ticket_opens_the_request_with_its_evidence_and_a_comment() -> None:
    world, tracker = core(None, OPEN)
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
    world, tracker = core(rule, *tickets)
    with pytest.raises(InvalidRequest) as refused:
        world.service.request(REQUESTER, "payments-write", "10m", reason)
    assert message in str(refused.value) and refused.value.context["field"] == "reason"
    assert not world.store.requests and not world.notifier.sent and not tracker.comments
    assert [e.detail["rule"] for e in world.store.audit if e.event == "rejected"] == ([audited] if audited else [])


def test_a_closed_ticket_passes_where_the_rule_does_not_ask_for_an_open_one() -> None:
    world, _ = core({"tracker": "jira", "must_be_open": False}, replace(OPEN, open=False, state="Done"))
    assert world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x").ticket == "jira:PAY-7"


def test_assignee_is_requester_needs_the_requesters_account_in_the_catalog() -> None:
    world, _ = core({"tracker": "jira", "assignee_is_requester": True}, OPEN)
    with pytest.raises(InvalidRequest, match="your Slack ID has no jira account in the catalog"):
        world.service.request(APPROVER_1, "payments-write", "10m", "PAY-7 x")


def test_the_tracker_down_fails_closed_for_a_required_ticket() -> None:
    world, tracker = core(None, OPEN)
    tracker.down = True
    with pytest.raises(InvalidRequest, match=r"jira cannot be asked about PAY-7 right now \(connection refused\)") as refused:
        world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x")
    assert "nothing was requested" in str(refused.value)
    assert not world.store.requests
    assert [e.detail["rule"] for e in world.store.audit] == ["tracker_unavailable"]


def test_a_tracker_without_its_token_fails_closed_and_says_which_variable() -> None:
    world, _ = core(None, OPEN)
    world.service.deps.trackers = {}
    with pytest.raises(InvalidRequest, match="JITBOT_TRACKER_JIRA_TOKEN is not set"):
        world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x")


def test_an_optional_ticket_is_checked_when_cited_and_recorded_unchecked_when_the_tracker_is_down() -> None:
    world, tracker = core({"tracker": "jira", "required": False}, OPEN)
    assert world.service.request(REQUESTER, "payments-write", "10m", "just looking").ticket is None
    world.service.cancel(world.store.audit[0].request_id, REQUESTER)
    tracker.down = True
    request = world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x")
    assert request.ticket is None and world.store.audit[-1].detail["ticket"] == {
        "tracker": "jira",
        "key": "PAY-7",
        "checked": False,
    }


def test_a_comment_the_tracker_refuses_undoes_nothing() -> None:
    world, tracker = core(None, OPEN)
    original = tracker.comment

    def refuse(key: str, text: str) -> None:
        tracker.down = True
        try:
            original(key, text)
        finally:
            tracker.down = False

    tracker.comment = refuse  # type: ignore[method-assign]
    request = world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x")
    assert world.service.approve(request.id, APPROVER_1).state is State.PENDING
    assert world.service.approve(request.id, APPROVER_3).state is State.ACTIVE
    tracker.comment = original  # type: ignore[method-assign]
    world.clock.advance(timedelta(minutes=1))
    world.service.deps.kick()  # the outbox retries the comments the tracker refused
    texts = [text for _, text in tracker.comments]
    assert any("requested payments-write for 10m" in t for t in texts) and any("access granted until" in t for t in texts)


def test_the_ticket_is_told_of_the_request_the_grant_and_its_end() -> None:
    world, tracker, rid = active_grant()
    world.service.revoke(rid, REQUESTER)
    texts = [text.removeprefix(f"jitbot {rid}: ") for _, text in tracker.comments]
    assert texts[0] == f"requested payments-write for 10m by Slack user {REQUESTER}"
    assert texts[1].startswith("access granted until ") and texts[1].endswith(f"approved by {APPROVER_1}, {APPROVER_3}")
    assert texts[2] == f"access revoked by {REQUESTER}"


def oncall_data(**rule: Any) -> dict[str, Any]:
    data = copy.deepcopy(catalog_data())
    data["settings"]["oncall"] = {"accounts": {REQUESTER: "PREQ001"}}  # type: ignore[index]
    data["scopes"]["payments-read"]["auto_approve"] = [{"max_duration": "30m", **rule}]  # type: ignore[index]
    return data


def test_check_names_every_on_call_problem_at_once() -> None:
    data = oncall_data(end_with_shift=True)
    data["scopes"]["payments-read"]["approvers"] = ["oncall:p1a2b3c", APPROVER_3]  # type: ignore[index]
    data["scopes"]["payments-write"]["auto_approve"] = [{"max_duration": "5m", "on_call": {"schedule": "X1"}}]  # type: ignore[index]
    data["settings"]["oncall"]["accounts"]["alice"] = "PALICE1"  # type: ignore[index]
    found = problems(data)
    assert "scopes.payments-read.auto_approve[0].end_with_shift: needs `on_call` (there is no shift to end with)" in found
    assert "scopes.payments-read.auto_approve[0]: name the `requesters` (or an `on_call` schedule) the rule approves" in found
    assert "scopes.payments-read.approvers: `oncall:p1a2b3c` is not a PagerDuty schedule ID (e.g. oncall:P1A2B3C)" in found
    assert (
        "scopes.payments-write.auto_approve[0].on_call.schedule: `X1` is not a PagerDuty schedule ID (e.g. oncall:P1A2B3C)"
        in found
    )
    assert "settings.oncall.accounts: `alice` is not a Slack user ID (U…)" in found


def test_check_wants_settings_oncall_for_on_call_principals_and_rules() -> None:
    data = oncall_data(on_call={"schedule": "P1A2B3C"})
    del data["settings"]["oncall"]  # type: ignore[attr-defined]
    data["scopes"]["payments-read"]["requesters"] = ["oncall:P1A2B3C"]  # type: ignore[index]
    found = problems(data)
    assert "scopes.payments-read.requesters: `oncall:P1A2B3C` needs [settings.oncall] (PagerDuty) to say who is on call" in found
    assert (
        "scopes.payments-read.auto_approve[0].on_call.schedule: `P1A2B3C` needs [settings.oncall] (PagerDuty) to say who is on call"
        in found
    )
    found = problems(oncall_data(on_call={"schedule": "P1A2B3C", "max_escalation_level": 0}))
    assert found == [
        "scopes.payments-read.auto_approve.0.on_call.max_escalation_level: Input should be greater than or equal to 1"
    ]


def test_a_catalog_with_on_call_rules_and_principals_loads() -> None:
    data = oncall_data(name="on call", on_call={"schedule": "P1A2B3C", "max_escalation_level": 1}, end_with_shift=True)
    data["scopes"]["payments-read"]["approvers"] = ["oncall:P1A2B3C", APPROVER_3]  # type: ignore[index]
    rule = parse_catalog(data).scopes["payments-read"].auto_approve[0]
    assert rule.on_call is not None and rule.on_call.max_escalation_level == 1 and rule.end_with_shift


def test_nobody_is_on_call_without_a_source_so_on_call_rules_never_fire() -> None:
    world = bootstrap(parse_catalog(oncall_data(on_call={"schedule": "P1A2B3C"})))
    assert world.service.request(REQUESTER, "payments-read", "10m", "INC-1 x").state is State.PENDING


def active_grant(rule: dict[str, Any] | None = None) -> tuple[Core, FakeTracker, str]:
    world, tracker = core(rule, OPEN)
    request = world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 rotate")
    world.service.approve(request.id, APPROVER_1)
    assert world.service.approve(request.id, APPROVER_3).state is State.ACTIVE
    return world, tracker, request.id


@pytest.mark.parametrize("ticket_now", ["closed", "gone"])
def test_the_watcher_ends_a_grant_whose_ticket_closed_or_went_away(ticket_now: str) -> None:
    world, tracker, rid = active_grant()
    if ticket_now == "closed":
        tracker.tickets["PAY-7"] = replace(OPEN, open=False, state="Done")
    else:
        del tracker.tickets["PAY-7"]
    assert [r.id for r in world.service.watch_tickets()] == [rid]
    assert world.store.get(rid).state is State.REVOKED and not world.issuer.live
    revoked = world.store.audit[-1]
    assert (revoked.event, revoked.actor, revoked.detail["cause"]) == ("revoked", "system", "ticket_closed")
    assert tracker.comments[-1] == ("PAY-7", f"jitbot {rid}: access revoked by system (ticket closed)")
    assert world.service.watch_tickets() == []


def test_the_watcher_leaves_open_tickets_and_ends_nothing_when_the_tracker_is_down() -> None:
    world, tracker, rid = active_grant()
    assert world.service.watch_tickets() == []
    tracker.tickets["PAY-7"] = replace(OPEN, open=False, state="Done")
    tracker.down = True
    assert world.service.watch_tickets() == [] and world.store.get(rid).state is State.ACTIVE
    tracker.down = False
    assert [r.id for r in world.service.watch_tickets()] == [rid]


def test_the_watcher_ends_only_grants_whose_scope_says_end_when_closed() -> None:
    world, tracker, rid = active_grant({"tracker": "jira", "end_when_closed": False})
    tracker.tickets["PAY-7"] = replace(OPEN, open=False, state="Done")
    assert world.service.watch_tickets() == [] and world.store.get(rid).state is State.ACTIVE


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


def test_an_extension_is_approved_as_asked() -> None:
    world = bootstrap(make_catalog())
    with pytest.raises(InvalidRequest, match="approved as asked"):
        world.service.approve("JIT-AAAAAAAA:e3", APPROVER_1, duration_text="5m")


def test_check_wants_a_required_redmine_ticket_for_within_window() -> None:
    found = problems(data_with({"tracker": "jira", "within_window": True}))
    assert (
        "scopes.payments-write.ticket.within_window: needs `required = true` and a Redmine tracker (its start and due dates)"
        in found
    )
