"""Catalog data used across tests: a small catalog in the real format."""

from __future__ import annotations

from grants.catalog import Catalog, parse_catalog

REQUESTER = "U0REQ0001"
APPROVER_1, APPROVER_2, APPROVER_3 = "U0APPR001", "U0APPR002", "U0APPR003"
OUTSIDER = "U0OUTSIDE"
AUDITOR = "U0AUDIT01"
ADMIN = "U0ADMIN01"


def catalog_data() -> dict[str, object]:
    return {
        "settings": {"pending_timeout": "1h", "auditors": [AUDITOR], "admins": [ADMIN]},
        "groups": {"db-oncall": [APPROVER_1, APPROVER_2]},
        "scopes": {
            "payments-read": {
                "description": "Read production payment secrets",
                "policies": ["payments-read"],
                "min_duration": "1s",
                "default_duration": "15m",
                "max_duration": "1h",
                "requesters": ["*"],
                "approvers": ["group:db-oncall", APPROVER_3],
            },
            "payments-write": {
                "description": "Change production payment secrets",
                "policies": ["payments-read", "payments-write"],
                "min_duration": "5m",
                "default_duration": "15m",
                "max_duration": "30m",
                "requesters": [REQUESTER, APPROVER_1],
                "approvers": ["group:db-oncall", APPROVER_3],
                "approvals_required": 2,
                "reason_pattern": "(INC|CHG)-[0-9]+",
            },
        },
    }


def make_catalog() -> Catalog:
    return parse_catalog(catalog_data())
