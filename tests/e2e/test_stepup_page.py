"""The step-up page end to end without a browser, on real OpenBao (its OIDC provider with userpass + TOTP login MFA as
the IdP, Vault's OIDC auth method as the client) and both databases: an Approve click never approves by itself; the
link works once, for its approver only, in the browser that began it; every refusal is audited."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import text

from devkit.standin import message_text as shown
from tests.stepup_stage import STEPPED, Browserless, Stage, stage
from tests.vault_approval import APPROVER_1, APPROVER_2, REQUESTER, SCOPE


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def on(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with stage(request.param, tmp_path_factory.mktemp("stepup")) as built:
        yield built


def browser(on: Stage) -> Browserless:
    return Browserless(on, requests.Session())


def end(on: Stage, rid: str) -> None:
    """Deny what a test left pending (one open request per requester and scope)."""
    if on.state(rid) == "pending":
        on.bot.runtime.service.deny(rid, APPROVER_1, "test over")  # type: ignore[union-attr]


def test_a_click_approves_nothing_and_the_sign_in_of_the_clicker_does(on: Stage) -> None:
    rid = on.ask(STEPPED)
    link = on.click_approve(APPROVER_1, rid)
    assert on.state(rid) == "pending" and on.audit(rid, "approved") == []  # the click alone approved nothing
    page = browser(on).open(link)
    assert page.status_code == 200 and rid in page.text and "CHG-7 rotate the payment keys" in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert f"form-action 'self' {on.vault.addr}" in csp  # the form may lead to the IdP and nowhere else
    assert page.headers["Referrer-Policy"] == "same-origin" and "HttpOnly" in page.headers["Set-Cookie"]
    done = browser(on).sign_in(link, APPROVER_1)
    assert done.status_code == 200 and "Approved" in done.text, done.text
    on.wait_state(rid, "active")
    label = f"approved by <@{APPROVER_1}> (approved with sign-in)"
    on.slack.wait_for(lambda: on.slack.find_message(lambda m: rid in shown(m) and label in shown(m)))  # the approvers' message
    approved = on.audit(rid, "approved")
    assert approved[0][1] == APPROVER_1 and '"sign_in"' in approved[0][2] and on.vault.entities[APPROVER_1] in approved[0][2]
    assert "totp" in approved[0][2] and "/v1/identity/oidc/provider/jitbot" in approved[0][2]  # issuer, MFA: evidence
    assert link.split("t=")[1] not in " ".join(str(r) for r in on.rows("SELECT * FROM step_up_links"))  # digests only
    on.bot.runtime.service.revoke(rid, REQUESTER)  # type: ignore[union-attr]


def test_a_replayed_link_and_a_replayed_callback_are_refused_and_audited(on: Stage) -> None:
    rid = on.ask(STEPPED)
    link = on.click_approve(APPROVER_1, rid)
    first = browser(on)
    started = first.submit(first.open(link))
    assert started.status_code == 303
    again = browser(on).open(link)  # the same link, opened again (forwarded, captured)
    assert again.status_code == 403 and "already used" in again.text
    back = first.come_back(started.headers["Location"], APPROVER_1)
    assert back.status_code == 200 and on.state(rid) == "active"
    replay = first.session.get(back.url, timeout=10)  # the IdP's redirect back, once more
    assert replay.status_code == 403 and "came back already" in replay.text
    assert {"step_up_link_reused", "step_up_state_unknown"} <= set(on.rules(rid) + on.rules())
    on.bot.runtime.service.revoke(rid, REQUESTER)  # type: ignore[union-attr]


def test_someone_else_signing_in_is_refused_audited_and_counts_nowhere(on: Stage) -> None:
    rid = on.ask(SCOPE)  # vault-enforced: two approvers
    link = on.click_approve(APPROVER_1, rid)
    refused = browser(on).sign_in(link, APPROVER_2)  # a real approver, but not the one who clicked
    assert refused.status_code == 403 and "someone else" in refused.text
    assert "step_up_wrong_person" in on.rules(rid) and on.state(rid) == "pending"
    assert on.audit(rid, "approval_added") == []
    gates = on.bot.runtime.service.deps.control_groups  # type: ignore[union-attr]
    found = on.vault.root.write_data("sys/control-group/request", data={"accessor": gates.accessor(rid)})  # type: ignore[union-attr]
    assert found["data"]["authorizations"] in (None, [])  # Vault counted nobody either
    end(on, rid)


def test_the_requester_cannot_approve_through_an_approvers_link(on: Stage) -> None:
    rid = on.ask(SCOPE)
    link = on.click_approve(APPROVER_1, rid)
    refused = browser(on).sign_in(link, REQUESTER)
    assert refused.status_code == 403 and "step_up_wrong_person" in on.rules(rid) and on.state(rid) == "pending"
    end(on, rid)


def test_an_expired_link_another_browser_and_a_forged_form_are_refused_and_audited(on: Stage) -> None:
    rid = on.ask(STEPPED)
    expired = on.click_approve(APPROVER_1, rid)
    key = on.rows("SELECT key FROM step_up_links ORDER BY created_at DESC")[0][0]
    with on.bot.runtime.store.engine.begin() as connection:  # type: ignore[union-attr]
        connection.execute(text(f"UPDATE step_up_links SET expires_at = created_at WHERE key = '{key}'"))
    page = browser(on).open(expired)
    assert page.status_code == 403 and "expired" in page.text

    link = on.click_approve(APPROVER_1, rid)
    mine, theirs = browser(on), browser(on)
    page = mine.open(link)
    assert theirs.submit(page).status_code == 403  # their browser has no cookie of this page: a forged form
    assert mine.submit(page, Origin="https://evil.example").status_code == 403
    started = mine.submit(page)
    assert started.status_code == 303
    carried = theirs.come_back(started.headers["Location"], APPROVER_1)  # the code carried to another browser
    assert carried.status_code == 403 and "another browser" in carried.text
    assert on.state(rid) == "pending"
    assert {"step_up_link_expired", "step_up_other_browser"} <= set(on.rules(rid))
    assert "step_up_csrf" in on.rules()
    end(on, rid)


def test_a_click_on_a_decided_request_gets_no_link(on: Stage) -> None:
    rid = on.ask(STEPPED)
    link = on.click_approve(APPROVER_1, rid)
    end(on, rid)
    page = browser(on).open(link)
    assert page.status_code == 409 and "already decided" in page.text


def test_pages_of_the_step_up_path_answer_unknown_input_without_a_500(on: Stage) -> None:
    for path in (
        "/stepup/start",
        "/stepup/start?t=nothing",
        "/stepup/callback",
        "/stepup/callback?state=x&code=y",
        "/stepup/nope",
    ):
        answer = requests.get(f"{on.url}{path}", timeout=10)
        assert answer.status_code in (403, 404) and "default-src 'none'" in answer.headers["Content-Security-Policy"], path
    assert requests.post(f"{on.url}/stepup/start", data=b"x" * 10_000, timeout=10).status_code == 403


def test_a_sign_in_older_than_max_age_is_refused_by_the_idp_and_by_vault(on: Stage) -> None:
    role = "auth/oidc/role/jitbot-approver"
    on.vault.root.write_data(role, data={"max_age": 2})
    try:
        rid = on.ask(STEPPED)
        link = on.click_approve(APPROVER_1, rid)
        person = browser(on)
        idp_url = person.submit(person.open(link)).headers["Location"]
        session = on.vault.idp_login(APPROVER_1)  # signed in at the IdP …
        time.sleep(3)  # … longer ago than max_age (the thing under test is real time)
        query = {k: v[0] for k, v in parse_qs(urlsplit(idp_url).query).items()}
        authorize = f"{on.vault.addr}/v1/identity/oidc/provider/jitbot/authorize"
        stale = requests.get(authorize, params=query, headers={"X-Vault-Token": session}, timeout=10)
        assert stale.status_code == 400 and stale.json()["error"] == "max_age_violation"  # the IdP wants a new login
        back = person.session.get(
            f"{on.url}/stepup/callback", params={"state": query["state"], "error": "max_age_violation"}, timeout=10
        )
        assert back.status_code == 403 and "max_age_violation" in back.text
        # An IdP that ignored max_age: its token has no fresh auth_time, and Vault refuses the sign-in itself.
        link = on.click_approve(APPROVER_1, rid)
        idp_url = person.submit(person.open(link)).headers["Location"]
        query = {k: v[0] for k, v in parse_qs(urlsplit(idp_url).query).items() if k != "max_age"}
        code = requests.get(authorize, params=query, headers={"X-Vault-Token": session}, timeout=10).json()["code"]
        back = person.session.get(f"{on.url}/stepup/callback", params={"state": query["state"], "code": code}, timeout=10)
        assert back.status_code == 403 and "auth_time" in back.text
        assert on.rules(rid).count("step_up_signin_failed") >= 1 and on.state(rid) == "pending"
    finally:
        on.vault.root.write_data(role, data={"max_age": 300})
    end(on, rid)


def test_a_post_with_a_bogus_link_is_refused_before_any_vault_call(on: Stage) -> None:
    """The form's cookie and token are the browser's own: only the link proves anyone was asked to approve."""
    page_app = on.bot.runtime.web.stepup  # type: ignore[union-attr]
    real_begin, begun = page_app.flow.begin, []

    def counted(client_nonce: str) -> tuple[str, str]:
        begun.append(client_nonce)
        return real_begin(client_nonce)  # type: ignore[no-any-return]

    page_app.flow.begin = counted
    rid = on.ask(STEPPED)
    try:
        person = browser(on)
        page = person.open(on.click_approve(APPROVER_1, rid))
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        bogus = person.session.post(
            f"{on.url}/stepup/start",
            data={"t": "bogus", "csrf": csrf},
            headers={"Origin": on.url},
            allow_redirects=False,
            timeout=10,
        )
        assert bogus.status_code == 403 and "not a link jitbot made" in bogus.text
        assert begun == []  # Vault's oidc/auth_url was never asked
        assert "step_up_link_unknown" in on.rules()  # audited as before (a burst of them is counted)
        assert person.submit(page).status_code == 303 and len(begun) == 1  # the real link still starts one sign-in
    finally:
        del page_app.flow.begin
        end(on, rid)


def test_an_approver_vault_does_not_count_is_refused_audited_and_told_why(on: Stage) -> None:
    """OpenBao answers a non-member's authorization with success and counts nothing: jitbot must not record it."""
    rid = on.ask(SCOPE)  # vault-enforced; both approvers were in its group when it was asked
    group = f"identity/group/name/jitbot-approvers-{SCOPE}-1"
    members = on.vault.root.read(group)["data"]["member_entity_ids"]
    on.vault.root.write_data(group, data={"member_entity_ids": [on.vault.entities[APPROVER_1]]})  # an operator's slip
    try:
        refused = browser(on).sign_in(on.click_approve(APPROVER_2, rid), APPROVER_2)
    finally:
        on.vault.root.write_data(group, data={"member_entity_ids": members})
    assert refused.status_code == 403 and "Vault refused your authorization" in refused.text, refused.text
    assert "Vault admin" in refused.text and "approver group" in refused.text and "Try again in a minute" not in refused.text
    assert "vault_refused" in on.rules(rid) and on.state(rid) == "pending"
    assert on.audit(rid, "approval_added") == [] and on.audit(rid, "approved") == []
    gates = on.bot.runtime.service.deps.control_groups  # type: ignore[union-attr]
    found = on.vault.root.write_data("sys/control-group/request", data={"accessor": gates.accessor(rid)})  # type: ignore[union-attr]
    assert found["data"]["authorizations"] in (None, [])  # Vault counted nobody
    counted = browser(on).sign_in(on.click_approve(APPROVER_2, rid), APPROVER_2)  # once the group is right again
    assert counted.status_code == 200 and "1 of 2 approvals" in counted.text, counted.text
    end(on, rid)


def test_approve_for_less_on_a_step_up_scope_is_refused_before_any_link_is_made(on: Stage) -> None:
    rid = on.ask(STEPPED)
    links = len(on.rows("SELECT key FROM step_up_links"))
    status, _ = on.client.choose(APPROVER_1, "approve_for", f"{rid}:r@5m")
    assert status == 200
    name = on.client.last_response_name
    assert name is not None
    reply = on.slack.wait_for(
        lambda: next((r for r in on.slack.responses_to(name) if "Approve for less" in str(r.get("text"))), None)
    )
    assert "not available where approving needs a sign-in" in str(reply["text"]) and "stepup" not in str(reply["text"])
    assert len(on.rows("SELECT key FROM step_up_links")) == links  # no link row was made
    assert on.state(rid) == "pending"
    end(on, rid)


def test_an_authorization_vault_refuses_because_the_hold_is_gone_is_audited_and_explained(on: Stage) -> None:
    rid = on.ask(SCOPE)
    link = on.click_approve(APPROVER_1, rid)
    gates = on.bot.runtime.service.deps.control_groups  # type: ignore[union-attr]
    accessor = gates.accessor(rid)  # type: ignore[union-attr]
    on.vault.root.secrets.kv.v2.delete_metadata_and_all_versions(path=f"jitbot/control-groups/{rid}", mount_point="secret")
    refused = browser(on).sign_in(link, APPROVER_1)
    assert refused.status_code == 403 and "Vault refused your authorization" in refused.text, refused.text
    assert "no control-group request" in refused.text and "Try again in a minute" not in refused.text
    assert "vault_refused" in on.rules(rid) and on.state(rid) == "pending" and on.audit(rid, "approval_added") == []
    found = on.vault.root.write_data("sys/control-group/request", data={"accessor": accessor})
    assert found["data"]["authorizations"] in (None, [])
    end(on, rid)
