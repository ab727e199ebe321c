"""The step-up page in headless Chromium (Debian's, through Playwright) on real OpenBao: a Slack Approve click, the
page, OpenBao's own login page with the TOTP second factor, back to the page; two approvers release one credential of
a vault-enforced scope. The strict CSP holds (no violation, nothing loaded from elsewhere), keyboard alone works, and
someone else signing in or a reused link gets a refusal page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from playwright import sync_api as playwright_api

from tests.conftest import WRAP_TOKEN
from tests.e2e.test_playground_browser import CHROMIUM, LAUNCH_ARGS
from tests.stepup_stage import Stage, stage
from tests.vault_approval import APPROVER_1, APPROVER_2, LOGINS, PASSWORDS, REQUESTER, SCOPE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with stage("sqlite", tmp_path_factory.mktemp("stepup-browser")) as built:
        yield built


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `bash .ci/run` installs Debian's chromium (or apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)  # never `playwright install`
        yield launched
        launched.close()


class Approver:
    """One person's browser (its own cookies), recording what it loaded and every CSP violation it reported."""

    def __init__(self, chromium: Any, on: Stage):
        self.context = chromium.new_context()
        self.page = self.context.new_page()
        self.loaded: list[str] = []
        self.violations: list[str] = []
        self.page.on("request", lambda r: self.loaded.append(r.url))
        self.page.on("console", lambda m: self.violations.append(m.text) if "Content Security Policy" in m.text else None)
        self.on = on

    def approve_with_keyboard(self, link: str) -> None:
        self.page.goto(link)
        assert self.page.evaluate("document.activeElement.id") == "approve"  # the one button, focused: Enter is enough
        self.page.keyboard.press("Enter")

    def sign_in(self, who: str) -> None:
        """OpenBao's own login page (prompt=login: always a fresh one), then its TOTP form (login MFA)."""
        page = self.page
        page.wait_for_selector("[data-test-select='auth-method']", timeout=30_000)
        page.select_option("[data-test-select='auth-method']", "userpass")
        page.fill("input[name=username]", LOGINS[who])
        page.fill("input[name=password]", PASSWORDS[who])
        page.click("#auth-submit")
        page.wait_for_selector("#passcode", timeout=30_000)
        page.fill("#passcode", self.on.vault.passcode(who))
        page.click("#validate")
        page.wait_for_url(f"{self.on.url}/stepup/callback*", timeout=30_000)

    def close(self) -> None:
        self.context.close()


def test_two_approvers_sign_in_with_totp_and_release_one_working_credential(on: Stage, chromium: Any) -> None:
    rid = on.ask(SCOPE)
    for who in (APPROVER_1, APPROVER_2):
        link = on.click_approve(who, rid)
        person = Approver(chromium, on)
        try:
            person.approve_with_keyboard(link)
            person.sign_in(who)
            assert "Approved" in person.page.inner_text("h1"), person.page.content()
            ours = [u for u in person.loaded if u.startswith(on.url)]
            assert all(u.startswith((on.url, on.vault.addr)) for u in person.loaded), person.loaded  # nothing else
            assert f"{on.url}/stepup/style.css" in ours
            assert person.violations == [], person.violations
        finally:
            person.close()
    on.wait_state(rid, "active")
    dm = on.slack.wait_for(lambda: next((m for m in on.slack.dm_messages(REQUESTER) if "unwrap" in str(m)), None), timeout=20)
    wrapping = WRAP_TOKEN.search(str(dm))
    assert wrapping
    released = requests.post(f"{on.vault.addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": wrapping.group(1)}, timeout=10)
    token = released.json()["data"]["token"]
    assert "payments-read" in hvac.Client(url=on.vault.addr, token=token).auth.token.lookup_self()["data"]["policies"]
    again = requests.post(f"{on.vault.addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": wrapping.group(1)}, timeout=10)
    assert again.status_code == 400  # one approval, one credential
    evidence = [d for e, _, d in on.audit(rid) if e in ("approval_added", "approved")]
    assert len(evidence) == 2 and all('"sign_in"' in d and re.search(r'"mfa": ?"totp"', d) for d in evidence)
    on.bot.runtime.service.revoke(rid, REQUESTER)  # type: ignore[union-attr]


def test_someone_else_signing_in_and_a_reused_link_get_refusal_pages(on: Stage, chromium: Any) -> None:
    rid = on.ask(SCOPE)
    link = on.click_approve(APPROVER_1, rid)
    intruder = Approver(chromium, on)
    try:
        intruder.approve_with_keyboard(link)
        intruder.sign_in(APPROVER_2)  # a real approver's account, but not the person who clicked
        assert "Not approved" in intruder.page.inner_text("h1") and "someone else" in intruder.page.inner_text("#message")
        intruder.page.goto(link)
        assert "already used" in intruder.page.inner_text("#message")
        assert intruder.violations == []
    finally:
        intruder.close()
    assert on.state(rid) == "pending" and "step_up_wrong_person" in on.rules(rid)
    on.bot.runtime.service.deny(rid, APPROVER_1, "test over")  # type: ignore[union-attr]
