"""Approvals bound to context: the catalog's trackers and ticket rules, and the rules at request time (fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from bot import slack_catalog
from grants.catalog import CatalogError, parse_catalog
from grants.context_catalog import cited_ticket
from tests.catalogs import APPROVER_3
from tests.unit.usecases.worlds import data_with, oncall_data


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


def test_check_wants_a_required_ticket_from_a_tracker_with_change_windows_for_within_window() -> None:
    found = problems(data_with({"tracker": "jira", "within_window": True}))
    assert (
        "scopes.payments-write.ticket.within_window: needs `required = true` and a tracker with change windows (Redmine's "
        "start and due dates, or Jira's `window_fields` under [settings.trackers.jira])"
    ) in found
    windowed = {"jira": {"kind": "jira", "url": "https://jira.test", "window_fields": ["customfield_10022", "customfield_10023"]}}
    assert parse_catalog(data_with({"tracker": "jira", "within_window": True}, windowed)).scopes["payments-write"].ticket
    found = problems(
        data_with(
            {"tracker": "ops"},
            {"ops": {"kind": "redmine", "url": "https://redmine.test", "window_fields": ["startdate", "duedate"]}},
        )
    )
    assert "settings.trackers.ops.window_fields: only for Jira (Redmine's window is its start and due dates)" in found
    found = problems(
        data_with(None, {"jira": {"kind": "jira", "url": "https://jira.test", "window_fields": ["custom field 1", "x"]}})
    )
    assert any("window_fields" in p and "two Jira field IDs" in p for p in found), found
