"""Step-up links in the core: offered only where an approval needs a sign-in, spent once, in time, in one browser;
the signed-in approval carries its evidence; every refusal is audited."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from grants.audit import AuditQuery
from grants.catalog import parse_catalog
from grants.domain import NotAllowed, State
from grants.stepup import StepUpLink, digest
from tests.catalogs import APPROVER_1, APPROVER_3, REQUESTER, catalog_data
from tests.fakes import Core, bootstrap


class Links:
    """An honest in-memory StepUpLinks."""

    def __init__(self) -> None:
        self.rows: dict[str, StepUpLink] = {}

    def add(self, link: StepUpLink) -> None:
        self.rows[link.key] = link

    def get(self, key: str) -> StepUpLink | None:
        return self.rows.get(key)

    def begin(self, key: str, state: str, browser: str, now: datetime) -> bool:
        link = self.rows[key]
        if link.used_at is not None:
            return False
        self.rows[key] = replace(link, used_at=now, state=state, browser=browser)
        return True

    def finish(self, state: str) -> StepUpLink | None:
        for key, link in self.rows.items():
            if link.state == state:
                self.rows[key] = replace(link, state=None)
                return link
        return None


class Signed:
    entity_id, issuer, subject = "ent-1", "https://idp.example", "sub-1"
    authorized: list[str] = []

    def authorize(self, request_id: str) -> bool:
        self.authorized.append(request_id)
        return True


@pytest.fixture
def core() -> Core:
    """This module's core: the conftest's, with payments-read wanting a sign-in on the step-up page."""
    data = catalog_data()
    data["scopes"]["payments-read"]["step_up"] = True  # type: ignore[index]
    data["settings"]["web_url"] = "https://jitbot.example"  # type: ignore[index]
    built = bootstrap(parse_catalog(data))
    built.service.deps.step_up_links = Links()
    return built


def rules(core: Core) -> list[str]:
    return [e.detail.get("rule") for e in core.store.events(AuditQuery()) if e.event == "rejected"]


def test_a_link_only_where_a_sign_in_is_needed_and_then_once_in_time(core: Core) -> None:
    service = core.service
    plain = service.request(REQUESTER, "payments-write", "10m", "CHG-1 fix")
    assert service.offer_step_up(f"{plain.id}:r", APPROVER_1) is None  # no step-up there: approved as usual
    request = service.request(REQUESTER, "payments-read", "10m", "CHG-2 fix")
    with pytest.raises(NotAllowed):
        service.approve(f"{request.id}:r", APPROVER_1)  # the click alone
    secret = service.offer_step_up(f"{request.id}:r", APPROVER_1)
    assert secret is not None and secret not in str(core.service.deps.step_up_links.rows)  # type: ignore[union-attr]
    link, shown = service.step_up_link(secret)
    assert (link.slack_user, shown.id) == (APPROVER_1, request.id)
    service.begin_step_up(secret, "st-1", digest("cookie", "browser"))
    with pytest.raises(NotAllowed, match="already used"):
        service.begin_step_up(secret, "st-2", digest("cookie", "browser"))
    core.clock.advance(timedelta(minutes=11))  # past link_ttl (10m) since the sign-in began
    with pytest.raises(NotAllowed, match="too long"):
        service.arrive_step_up("st-1", digest("cookie", "browser"))
    with pytest.raises(NotAllowed, match="came back already"):
        service.arrive_step_up("st-1", digest("cookie", "browser"))
    assert {"step_up_required", "step_up_link_reused", "step_up_link_expired", "step_up_state_unknown"} <= set(rules(core))
    assert service.get(request.id).state is State.PENDING


def test_a_signed_in_approval_carries_the_evidence_and_a_non_approver_gets_no_link(core: Core) -> None:
    service = core.service
    request = service.request(REQUESTER, "payments-read", "10m", "CHG-3 fix")
    with pytest.raises(NotAllowed):
        service.offer_step_up(f"{request.id}:r", REQUESTER)  # the requester gets no link to approve their own
    secret = service.offer_step_up(f"{request.id}:r", APPROVER_3)
    assert secret is not None
    service.begin_step_up(secret, "st-9", digest("c", "browser"))
    link = service.arrive_step_up("st-9", digest("c", "browser"))
    done = service.approve_signed_in(link, Signed())
    assert done.state is State.ACTIVE and Signed.authorized == []  # approval = "bot": no control group to authorize
    approved = next(e for e in core.store.events(AuditQuery()) if e.event == "approved")
    assert approved.detail["sign_in"]["entity_id"] == "ent-1" and approved.detail["sign_in"]["issuer"] == "https://idp.example"
    assert approved.detail["sign_in"]["mfa"] == "totp" and approved.actor == APPROVER_3


def test_the_approvers_message_says_who_approved_with_sign_in(core: Core) -> None:
    from bot.blocks import approval_message
    from devkit.standin import message_text

    data = catalog_data()
    data["settings"]["web_url"] = "https://jitbot.example"  # type: ignore[index]
    data["scopes"]["payments-write"].pop("approvals_required")  # type: ignore[attr-defined]
    data["scopes"]["payments-write"].pop("approvers")  # type: ignore[attr-defined]
    data["scopes"]["payments-write"]["approval_steps"] = [  # type: ignore[index]
        {"name": "team", "approvers": [APPROVER_1]},
        {"name": "security", "approvers": [APPROVER_3], "step_up": True},
    ]
    catalog = parse_catalog(data)
    request = core.service.request(REQUESTER, "payments-read", "10m", "CHG-4 fix")
    two = replace(request, scope="payments-write", approval=replace(request.approval, given=(APPROVER_1, APPROVER_3)))
    text = message_text({"blocks": approval_message(two, catalog)[1]})
    assert f"<@{APPROVER_1}>, <@{APPROVER_3}> (approved with sign-in)" in text  # the team step needed none


def test_a_step_up_scope_whose_extensions_an_approver_decides_is_a_catalog_error() -> None:
    from grants.catalog import CatalogError

    data = catalog_data()
    data["settings"]["web_url"] = "https://jitbot.example"  # type: ignore[index]
    data["scopes"]["payments-read"].update(step_up=True, max_extensions=1)  # type: ignore[attr-defined]
    with pytest.raises(CatalogError, match="extension's approval would not ask for a sign-in"):
        parse_catalog(data)
    data["scopes"]["payments-read"]["extension_requires_approval"] = False  # type: ignore[index]
    parse_catalog(data)  # the requester extends alone: no approval is skipped


class Flow:
    """A SignInFlow that is never reached by these tests' pages (they stop before the IdP)."""

    def begin(self, client_nonce: str) -> tuple[str, str]:
        return "https://idp.example/authorize?state=st-x", "st-x"

    def idp_origin(self) -> str:
        return "https://idp.example"

    def complete(self, state: str, code: str, client_nonce: str, slack_user: str):  # type: ignore[no-untyped-def]
        raise AssertionError("not reached")


def test_the_page_escapes_what_people_typed_and_sends_its_security_headers(core: Core) -> None:
    from bot.stepup_page import StepUpPage

    request = core.service.request(REQUESTER, "payments-read", "10m", 'CHG-5 <script>alert("x")</script> & "more"')
    secret = core.service.offer_step_up(f"{request.id}:r", APPROVER_1)
    page = StepUpPage(core.service, Flow(), core.service.deps.catalog)  # type: ignore[arg-type]
    seen: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.update(status=status, headers=dict(headers))

    html = b"".join(
        page({"PATH_INFO": "/stepup/start", "REQUEST_METHOD": "GET", "QUERY_STRING": f"t={secret}"}, start_response)
    ).decode()
    assert seen["status"] == "200 OK"
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;more&#34;" in html
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["Content-Security-Policy"].startswith(
        "default-src 'none'; style-src 'self'; form-action 'self' https://idp.example;"
    )
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Lax" in headers["Set-Cookie"] and "Secure" in headers["Set-Cookie"]


def test_an_unreachable_idp_answers_503_and_leaves_the_link_usable(core: Core) -> None:
    import io
    import re

    from bot.stepup_page import StepUpPage
    from grants.stepup import SignInRefused

    class Down(Flow):
        def begin(self, client_nonce: str) -> tuple[str, str]:
            raise SignInRefused("Vault cannot be reached (ConnectionError); nothing was recorded.", "step_up_idp_down")

    request = core.service.request(REQUESTER, "payments-read", "10m", "CHG-6 fix")
    secret = core.service.offer_step_up(f"{request.id}:r", APPROVER_1)
    page = StepUpPage(core.service, Down(), core.service.deps.catalog)  # type: ignore[arg-type]
    seen: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.update(status=status, headers=dict(headers))

    html = b"".join(
        page({"PATH_INFO": "/stepup/start", "REQUEST_METHOD": "GET", "QUERY_STRING": f"t={secret}"}, start_response)
    ).decode()
    cookie = str(seen["headers"]["Set-Cookie"]).split(";")[0]  # type: ignore[index]
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    body = f"t={secret}&csrf={csrf}".encode()
    environ = {
        "PATH_INFO": "/stepup/start", "REQUEST_METHOD": "POST", "HTTP_COOKIE": cookie, "HTTP_ORIGIN": "https://jitbot.example",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
    }  # fmt: skip
    answer = b"".join(page(environ, start_response)).decode()
    assert seen["status"] == "503 Service Unavailable" and "nothing was recorded" in answer
    link, _ = core.service.step_up_link(secret)  # not spent: the approver can try again once the IdP is back
    assert link.used_at is None and core.service.get(request.id).state is State.PENDING
