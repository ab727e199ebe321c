"""The worlds the use-case tests share: a catalog with steps, auto-approval, break-glass and extensions (and the
directory behind its usergroup), and a core whose scope wants a ticket from a fake tracker."""

from __future__ import annotations

import copy
from typing import Any

from grants.catalog import parse_catalog
from grants.domain import State
from grants.tickets import Ticket
from tests.catalogs import APPROVER_1, APPROVER_3, REQUESTER, catalog_data
from tests.fakes import Core, FakeTracker, bootstrap

REQ, DEV, LEAD1, LEAD2, SEC1, SEC2, BOSS, AUD = (
    "U0REQ0001",
    "U0DEV0001",
    "U0LEAD001",
    "U0LEAD002",
    "U0SEC0001",
    "U0SEC0002",
    "U0BOSS001",
    "U0AUDIT01",
)


def data() -> dict:
    return {
        "settings": {"pending_timeout": "4h", "auditors": [AUD]},
        "groups": {"leads": [LEAD1, LEAD2], "devs": [DEV, REQ], "oncall": [REQ]},
        "scopes": {
            "prod-write": {
                "description": "two steps",
                "policies": ["p"],
                "max_duration": "1h",
                "requesters": ["*"],
                "approval_steps": [
                    {"name": "team lead", "approvers": ["group:leads"], "approvals": 1},
                    {"name": "security", "approvers": ["usergroup:S0SECURITY", LEAD1], "approvals": 1},
                ],
                "remind_after": "10m",
                "escalate_after": "30m",
                "escalation": [BOSS],
            },
            "staging": {
                "description": "auto for devs",
                "policies": ["p"],
                "max_duration": "3h",
                "default_duration": "1h",
                "requesters": ["*"],
                "approvers": ["group:leads"],
                "auto_approve": [{"name": "devs-on-staging", "requesters": ["group:devs"], "max_duration": "2h"}],
                "require_reason": False,
                "max_extensions": 2,
                "extension_requires_approval": False,
                "max_total_duration": "3h",
                "warn_before": "10m",
            },
            "db": {
                "description": "break-glass and approved extensions",
                "policies": ["p"],
                "max_duration": "1h",
                "requesters": ["*"],
                "approvers": ["group:leads"],
                "break_glass": {"requesters": ["group:oncall"], "max_duration": "20m", "review_within": "1h"},
                "max_extensions": 1,
            },
        },
    }


class Directory:
    def __init__(self) -> None:
        self.calls = 0

    def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        self.calls += 1
        return frozenset({SEC1, SEC2}) if usergroup_id == "S0SECURITY" else frozenset()


OPEN = Ticket("PAY-7", "In Progress", True, "acc-req", "Rita Requester", "https://jira.test/browse/PAY-7")


def data_with(rule: dict[str, Any] | None = None, trackers: dict[str, Any] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(catalog_data())
    data["settings"]["trackers"] = trackers if trackers is not None else {"jira": {"kind": "jira", "url": "https://jira.test", "accounts": {REQUESTER: "acc-req"}}}  # type: ignore[index]  # fmt: skip
    scope = data["scopes"]["payments-write"]  # type: ignore[index]
    scope["reason_pattern"] = ""
    scope["ticket"] = rule if rule is not None else {"tracker": "jira", "end_when_closed": True}
    return data


def ticketed(rule: dict[str, Any] | None = None, *tickets: Ticket) -> tuple[Core, FakeTracker]:
    made = bootstrap(parse_catalog(data_with(rule)))
    tracker = FakeTracker(*tickets)
    made.service.deps.trackers = {"jira": tracker}
    return made, tracker


def oncall_data(**rule: Any) -> dict[str, Any]:
    data = copy.deepcopy(catalog_data())
    data["settings"]["oncall"] = {"accounts": {REQUESTER: "PREQ001"}}  # type: ignore[index]
    data["scopes"]["payments-read"]["auto_approve"] = [{"max_duration": "30m", **rule}]  # type: ignore[index]
    return data


def active_grant(rule: dict[str, Any] | None = None) -> tuple[Core, FakeTracker, str]:
    world, tracker = ticketed(rule, OPEN)
    request = world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 rotate")
    world.service.approve(request.id, APPROVER_1)
    assert world.service.approve(request.id, APPROVER_3).state is State.ACTIVE
    return world, tracker, request.id


def stale_refusals(store: Any) -> list[tuple[str, str]]:
    return [(e.actor, e.detail["action"]) for e in store.audit if e.event == "rejected" and e.detail["rule"] == "stale_decision"]
