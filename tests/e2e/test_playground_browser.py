"""`jitbot playground` in headless Chromium (Debian's, driven by Playwright): the whole story played on the page, every
payload it draws checked by slack_sdk's models, the credential tried against the real OpenBao, a timer seen by itself."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.slack_payloads import check_blocks, check_view

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
expect.set_options(timeout=20_000)  # a loaded 2-core machine: the waits are on conditions, these are only ceilings

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "playground.png"
DANA, ARI, BEN, AUDREY = "Dana — requester", "Ari — approver", "Ben — approver", "Audrey — auditor"
REQUEST_ID = re.compile(r"JIT-[A-Z0-9]+")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def playground() -> Iterator[Any]:
    from devkit.playground.runner import Playground
    from devkit.playground.server import PlaygroundServer

    stage = Playground().start()
    server = PlaygroundServer(stage).start()
    try:
        yield server
    finally:
        server.stop()
        stage.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `bash .ci/run` installs Debian's chromium (or apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)  # never `playwright install`
        yield launched
        launched.close()


class Drawn:
    """Every payload the page was given to draw (each /api/state answer), checked by slack_sdk's models."""

    def __init__(self) -> None:
        self.checked = 0
        self.problems: list[str] = []

    def check(self, state: dict[str, Any]) -> None:
        surfaces: list[tuple[str, Any]] = []
        for conversation in state["conversations"]:
            for message in conversation["messages"]:
                surfaces += [("blocks", message.get("blocks"))] + [("blocks", r.get("blocks")) for r in message["replies"]]
            surfaces += [("blocks", e.get("blocks")) for e in conversation["ephemerals"]]
        if state["home"]:
            surfaces.append(("view", state["home"]))
        if state["modal"]:
            surfaces.append(("view", state["modal"]["view"]))
        for kind, payload in surfaces:
            if not payload:
                continue  # a text-only message: nothing of Block Kit to check
            try:
                check_view(payload) if kind == "view" else check_blocks(payload)
                self.checked += 1
            except Exception as error:  # collected, so one bad payload names itself among all
                self.problems.append(f"{kind}: {error}\n{str(payload)[:400]}")


def watch(page: Any, drawn: Drawn, errors: list[str]) -> None:
    def on_response(response: Any) -> None:
        if "/api/state" in response.url and response.ok:
            drawn.check(response.json())
        elif "/api/" in response.url and response.status >= 500:
            errors.append(f"{response.status} {response.url}")

    page.on("response", on_response)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)


def be(page: Any, who: str) -> None:
    page.get_by_role("tab", name=who, exact=True).click()
    expect(page.get_by_role("tab", name=who, exact=True)).to_have_attribute("aria-selected", "true")


def go(page: Any, conversation: str) -> None:
    page.locator("#sidebar button.conv", has_text=re.compile(rf"^{re.escape(conversation)}( \(\d+\))?$")).click()
    expect(page.locator(".pane-title")).to_have_text(conversation)


def field(dialog: Any, label: str) -> Any:
    return dialog.get_by_label(re.compile(rf"^{re.escape(label)}( \(optional\))?$"))


def slash(page: Any, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send", exact=True).click()


def test_the_story_in_a_browser(playground: Any, browser: Any) -> None:
    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    drawn, errors = Drawn(), []
    context.set_default_timeout(30_000)
    page = context.new_page()
    watch(page, drawn, errors)
    page.goto(playground.url)
    expect(page.get_by_role("tab", name=DANA, exact=True)).to_have_attribute("aria-selected", "true")

    # A grant of 10 seconds, then a second tab nobody touches: the timer's expiry must reach it by itself.
    go(page, "jitbot")
    slash(page, "/elevate staging-read 10s check the staging config")
    short = page.locator("article.msg", has_text="staging-read").filter(has_text="unwrap").first
    expect(short).to_be_visible(timeout=20_000)
    short_id = REQUEST_ID.search(short.inner_text()).group(0)
    untouched = context.new_page()
    watch(untouched, drawn, errors)
    untouched.goto(playground.url)
    go(untouched, "jitbot")
    expect(untouched.locator("article.msg", has_text=short_id).first).to_be_visible()

    # The request form, with a field error first.
    slash(page, "/elevate")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Request elevation")
    field(dialog, "Scope").select_option("payments-read")
    field(dialog, "Duration").fill("99h")
    dialog.get_by_role("button", name="Request", exact=True).click()
    expect(dialog.locator(".bk-error")).to_contain_text("payments-read")
    expect(field(dialog, "Duration")).to_have_value("99h")  # what was typed is kept
    field(dialog, "Duration").fill("20m")
    field(dialog, "Reason").fill("INC-4411 replay *stuck* refunds & retries")
    dialog.get_by_role("button", name="Request", exact=True).click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    receipt = page.locator("article.msg", has_text="payments-read").filter(has_text="sent to").last
    expect(receipt).to_be_visible()
    rid = REQUEST_ID.search(receipt.inner_text()).group(0)

    # Dana sees the request in #approvals too, and her own approval is refused.
    go(page, "#approvals")
    ask = page.locator("article.msg", has_text=f"Elevation request {rid}")
    expect(ask).to_contain_text("Waiting for approval")
    expect(ask).to_contain_text("stuck")  # the reason, escaped: no markup of hers became HTML
    assert ask.locator("img, script").count() == 0
    ask.locator('[data-action-id="approve"]').click()
    expect(page.locator("article.ephemeral", has_text="cannot approve or deny your own request")).to_be_visible()

    # Ari approves: the message changes in place, its buttons gone; click to update measured.
    be(page, ARI)
    go(page, "#approvals")
    ask = page.locator("article.msg", has_text=f"Elevation request {rid}")
    clicked = time.monotonic()
    ask.get_by_role("button", name="Approve", exact=True).click()
    expect(ask).to_contain_text("Active")
    click_to_update = time.monotonic() - clicked
    expect(ask.get_by_role("button", name="Approve", exact=True)).to_have_count(0)

    # Dana unwraps her credential (shown once) and tries it inside and outside its scope, against the real OpenBao.
    be(page, DANA)
    go(page, "jitbot")
    dm = page.locator("article.msg", has_text=rid).filter(has_text="unwrap").last
    dm.get_by_role("button", name="Run bao unwrap in my terminal").click()
    expect(dm.locator("pre.once")).to_contain_text("token: s.")
    token = dm.locator("pre.once").inner_text().split()[1]
    card = page.locator(".cred", has_text=rid)
    expect(card).to_contain_text("payments-read")
    assert token not in page.locator("#wallet").inner_text()
    card.get_by_role("button", name="bao kv get secret/payments/stripe", exact=True).click()
    expect(card.locator("pre.log")).to_contain_text("ok: api_key=sk_demo_not_a_real_key_4242")
    card.get_by_role("button", name="bao kv get secret/k8s/prod", exact=True).click()
    expect(card.locator("pre.log")).to_contain_text("permission denied")

    # "I'm done" from Home: the grant ends, and the same token is refused.
    go(page, "jitbot · Home")
    grant = page.locator("article.home .bk-section", has_text=rid)
    expect(grant).to_be_visible()
    grant.get_by_role("button", name="I'm done", exact=True).click()
    expect(page.locator("article.home .bk-section", has_text=rid)).to_have_count(0)
    card.get_by_role("button", name="bao kv get secret/payments/stripe", exact=True).click()
    expect(card.locator("pre.log").last).to_contain_text("permission denied", timeout=10_000)
    assert card.locator("pre.log").inner_text().rstrip().endswith("permission denied")

    # A denial with a reason: Ben denies Dana's next request through the deny form.
    go(page, "jitbot")
    slash(page, "/elevate db-admin-staging 30m staging schema migration")
    second = page.locator("article.ephemeral, article.msg", has_text="db-admin-staging").filter(has_text="sent to").last
    expect(second).to_be_visible()
    denied_id = REQUEST_ID.search(second.inner_text()).group(0)
    be(page, BEN)
    go(page, "#approvals")
    page.locator("article.msg", has_text=f"Elevation request {denied_id}").get_by_role("button", name="Deny", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(denied_id)
    field(dialog, "Reason (the requester sees it)").fill("use the migration runbook instead")
    dialog.get_by_role("button", name="Deny", exact=True).click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("article.msg", has_text=f"Elevation request {denied_id}")).to_contain_text("Denied")
    be(page, DANA)
    go(page, "jitbot")
    expect(page.locator("article.msg", has_text=denied_id).filter(has_text="use the migration runbook instead")).to_be_visible()

    # The untouched tab: the 10-second grant ended by the bot's timer alone, shown by server-sent events.
    expect(untouched.locator("article.msg", has_text=short_id).filter(has_text="ended")).to_be_visible(timeout=30_000)

    # The auditor exports the trail and verifies it.
    be(page, AUDREY)
    go(page, "jitbot")
    slash(page, "/elevate audit --format csv")
    upload = page.locator("article.msg .file").last
    expect(upload).to_be_visible(timeout=20_000)
    upload.get_by_role("button", name="Open file", exact=True).click()
    expect(upload.locator("pre.file-text")).to_contain_text("seq,at,event,request_id")
    expect(upload.locator("pre.file-text")).to_contain_text(denied_id)
    assert token not in upload.locator("pre.file-text").inner_text()  # a credential never reaches an export
    page.get_by_role("button", name="jitbot audit verify", exact=True).click()
    expect(page.locator("pre.verdict")).to_contain_text("audit trail intact")
    expect(page.locator("#audit")).to_contain_text("exported")

    # The renderer shows what it does not know instead of dropping it; the bot itself sent nothing unknown.
    shown = page.evaluate("BlockKit.renderBlocks([{type: 'table', rows: []}], {names: {}}).textContent")
    assert shown == "[unsupported block: table]"
    assert page.locator(".bk-unsupported").count() == 0

    # The once-shown token is gone from the page after a reload.
    page.reload()
    expect(page.get_by_role("tab", name=DANA, exact=True)).to_be_visible()
    assert token not in page.content()

    story = time.monotonic() - started
    print(
        f"\nplayground story: {story:.1f}s; click Approve → Active shown: {click_to_update * 1000:.0f} ms; {drawn.checked} payloads checked"
    )
    assert not drawn.problems, "\n\n".join(drawn.problems)
    assert drawn.checked > 20
    assert not errors, errors
    context.close()


def test_the_people_side_by_side(playground: Any, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    context.set_default_timeout(30_000)
    drawn, errors = Drawn(), []
    page = context.new_page()
    watch(page, drawn, errors)
    page.goto(playground.url)
    page.get_by_role("button", name="Reset the story", exact=True).click()  # a fresh story: the picture starts clean
    expect(page.get_by_role("button", name="Reset the story", exact=True)).to_be_enabled(timeout=60_000)
    expect(page.locator("#audit-title")).to_have_text("Audit trail (0)")
    errors.clear()  # while the stage restarts, /api/state answers 503 (and the console says so): expected
    page.get_by_role("button", name="Side by side", exact=True).click()
    expect(page.locator("section.person")).to_have_count(4)
    dana, ari = page.get_by_role("region", name=DANA), page.get_by_role("region", name=ARI)
    for who in (DANA, ARI, BEN, AUDREY):
        expect(page.get_by_role("region", name=who)).to_be_visible()
    expect(page.locator("#sidebar")).to_be_hidden()

    # Dana asks in her column; Ari approves in his, in #approvals; nobody switches tabs.
    receipts = dana.locator("article.msg", has_text="payments-read").filter(has_text="sent to")
    before = receipts.count()  # the story before this test may have left receipts of its own
    dana.get_by_role("textbox", name="Message").fill("/elevate payments-read 15m INC-5 seen side by side")
    dana.get_by_role("button", name="Send", exact=True).click()
    expect(receipts).to_have_count(before + 1)
    rid = REQUEST_ID.search(receipts.last.inner_text()).group(0)
    ari.get_by_label("Conversation Ari looks at").select_option(label="#approvals")
    ask = ari.locator("article.msg", has_text=f"Elevation request {rid}")
    ask.get_by_role("button", name="Approve", exact=True).click()
    expect(ask).to_contain_text("Active")
    expect(page.get_by_role("tab", name=ARI, exact=True)).to_have_attribute("aria-selected", "true")  # Ari's click
    # Dana's column shows her credential as it arrives; unwrapped there, it is hers in the wallet beside.
    dm = dana.locator("article.msg", has_text=rid).filter(has_text="unwrap").last
    expect(dm).to_be_visible()
    dm.get_by_role("button", name="Run bao unwrap in my terminal", exact=True).click()
    expect(page.get_by_role("tab", name=DANA, exact=True)).to_have_attribute("aria-selected", "true")
    card = page.locator("#wallet .cred", has_text=rid)
    card.get_by_role("button", name="bao kv get secret/payments/stripe", exact=True).click()
    expect(card.locator("pre.log")).to_contain_text("ok: api_key=sk_demo_not_a_real_key_4242")
    # After a reload the once-shown token is gone from the page; the wallet and the columns come back as they were.
    page.reload()
    page.get_by_role("button", name="Side by side", exact=True).click()
    ari.get_by_label("Conversation Ari looks at").select_option(label="#approvals")
    expect(ask).to_contain_text("Active")
    expect(card.locator("pre.log")).to_contain_text("ok: api_key=sk_demo_not_a_real_key_4242")
    expect(page.locator("#status-line")).to_be_hidden()
    assert "token: s." not in page.content()
    if os.environ.get("JITBOT_PLAYGROUND_SCREENSHOT"):  # the README's picture: `JITBOT_PLAYGROUND_SCREENSHOT=1 pytest …`
        page.screenshot(path=str(SCREENSHOT))

    page.get_by_role("button", name="One at a time", exact=True).click()
    expect(page.locator("#together")).to_be_hidden()
    expect(page.locator(".pane-title")).to_be_visible()
    assert not drawn.problems, "\n\n".join(drawn.problems)
    assert not errors, errors
    context.close()
