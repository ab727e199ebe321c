"""The request form past 100 scopes: an external select whose options the bot serves, only what the person may request."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from bot import blocks
from tests.conftest import REQUESTER, World
from tests.slack_payloads import check_options_response, check_view

SCOPE_LINES = "\n".join(
    f'[scopes.bulk-{n:03d}]\ndescription = "Bulk scope {n}"\npolicies = ["k8s-prod-read"]\nrequesters = ["*"]\n'
    f'approvers = ["group:platform"]\n'
    for n in range(110)
)


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    locked = (
        '[scopes.locked-away]\ndescription = "Bulk scope nobody here may request"\npolicies = ["k8s-prod-read"]\n'
        'requesters = ["U0APPR001"]\napprovers = ["group:platform"]\n'
    )
    return {"[scopes.k8s-prod-read]": f"{SCOPE_LINES}\n{locked}\n[scopes.k8s-prod-read]"}


def suggest(w: World, user: str, typed: str, view: dict[str, Any]) -> tuple[int, Any]:
    """Slack's block_suggestion: `user` typed `typed` into the request form's external select."""
    payload = {
        "type": "block_suggestion",
        "user": {"id": user, "name": user.lower(), "team_id": w.slack.team_id},
        "container": {"type": "view", "view_id": view["id"]},
        "api_app_id": "A0JITBOT",
        "token": "unused",
        "action_id": blocks.SCOPE_SEARCH,
        "block_id": "scope",
        "value": typed,
        "team": {"id": w.slack.team_id, "domain": "jitbot-dev"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": view,
    }
    body = urlencode({"payload": json.dumps(payload)})
    return w.client.raw(body, {"Content-Type": "application/x-www-form-urlencoded", **w.client.sign(body)})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_past_100_scopes_the_form_searches_and_the_bot_serves_only_requestable_scopes(world: World):
    w = world
    status, _ = w.client.slash(REQUESTER, "")
    assert status == 200
    modal = w.slack.wait_for(lambda: next((v["view"] for v in w.slack.views.values() if v["kind"] == "modal"), None))
    check_view({k: modal[k] for k in ("type", "callback_id", "private_metadata", "title", "submit", "close", "blocks")})
    assert modal["blocks"][0]["element"]["type"] == "external_select"

    started = time.monotonic()
    status, answer = suggest(w, REQUESTER, "bulk scope 10", modal)
    assert status == 200 and time.monotonic() - started < 3, "options must come back within Slack's 3 s"
    assert [o["value"] for o in answer["options"]] == ["bulk-010", *(f"bulk-{n}" for n in range(100, 110))]
    check_options_response(answer)  # the HTTP answer itself, by slack_sdk's Option model and Slack's limits
    status, answer = suggest(w, REQUESTER, "", modal)
    assert status == 200 and len(answer["options"]) == 100
    check_options_response(answer)
    status, answer = suggest(w, REQUESTER, "nobody here", modal)
    assert status == 200 and answer["options"] == [], "a scope the person may not request is never offered"
    status, answer = suggest(w, "U0APPR001", "nobody here", modal)
    assert [o["value"] for o in answer["options"]] == ["locked-away"]

    chosen = {
        "type": "external_select",
        "selected_option": {"text": {"type": "plain_text", "text": "bulk-042"}, "value": "bulk-042"},
    }
    status, body = w.client.submit_view(
        REQUESTER, "request_modal", {"scope": {blocks.SCOPE_SEARCH: chosen}, "reason": {"value": "INC-42 bulk"}}
    )
    assert status == 200 and not body, body
    (rid,) = [r[0] for r in w.rows("SELECT id FROM requests WHERE scope = 'bulk-042'")]
    assert w.audit_names(rid)[0] == "requested"
