"""The step-up page: `/stepup/start` (the link an Approve click answers with) and `/stepup/callback` (back from the
IdP); server-rendered, no script, a strict Content-Security-Policy, the flow bound to the browser by a cookie."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape

from bot.web import read_body
from grants.catalog import Catalog
from grants.domain import AlreadyDecided, DomainError, NotAllowed, Request
from grants.durations import format_duration
from grants.ports import SignInFlow
from grants.service import ElevationService
from grants.stepup import SignInRefused, digest, new_secret

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
COOKIE = "jitbot_stepup"
FORM_LIMIT = 4096  # the one form carries two short fields
CSS = files("bot").joinpath("templates/stepup.css").read_bytes()


class StepUpPage:
    """A WSGI app for the paths under `/stepup/` (the bot's web process serves it on its own port)."""

    def __init__(self, service: ElevationService, flow: SignInFlow, catalog: Catalog):
        self.service, self.flow, self.catalog = service, flow, catalog
        self.base = catalog.settings.web_url.rstrip("/")
        self.env = Environment(loader=PackageLoader("bot", "templates"), autoescape=select_autoescape(default=True))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = (environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET"))
        try:
            if route == ("/stepup/style.css", "GET"):
                return self._send(start_response, "200 OK", CSS, "text/css; charset=utf-8")
            if route == ("/stepup/start", "GET"):
                return self._show(environ, start_response)
            if route == ("/stepup/start", "POST"):
                return self._begin(environ, start_response)
            if route == ("/stepup/callback", "GET"):
                return self._back(environ, start_response)
            return self._page(start_response, "404 Not Found", "Not found", "There is no page here.")
        except AlreadyDecided as decided:
            return self._page(start_response, "409 Conflict", "Already decided", str(decided))
        except NotAllowed as refusal:  # audited where it was raised
            return self._page(start_response, "403 Forbidden", "Not approved", str(refusal))
        except SignInRefused as refusal:
            status = "503 Service Unavailable" if refusal.rule == "step_up_idp_down" else "403 Forbidden"
            return self._page(start_response, status, "Not approved", str(refusal))
        except DomainError as error:
            return self._page(start_response, "400 Bad Request", "Not approved", str(error))
        except Exception:
            log.exception("the step-up page failed")
            return self._page(start_response, "503 Service Unavailable", "Not approved", "Something failed here; nothing was recorded. Try again in a minute.")  # fmt: skip

    # the three steps -------------------------------------------------------------------------------

    def _show(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The request and one button; opening the link spends nothing (a link preview cannot use it up)."""
        secret = _query(environ).get("t", "")
        link, request = self.service.step_up_link(secret)
        browser = new_secret()  # this browser's secret: the flow, the form and Vault's client_nonce hang on it
        form = {"link": secret, "csrf": digest(browser, "csrf"), "approver": link.slack_user}
        cookie = f"{COOKIE}={browser}; Path=/stepup; HttpOnly; SameSite=Lax; Max-Age=900" + (
            "; Secure" if self.base.startswith("https://") else ""
        )  # Lax, not Strict: the IdP's redirect back is a cross-site navigation that must carry it
        return self._page(start_response, "200 OK", "Approve with sign-in", "", request=request, form=form, cookie=cookie)

    def _begin(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The button: checked against cross-site forgery, spends the link on one sign-in, off to the IdP."""
        form = _form(environ)
        browser = _cookie(environ)
        origin = environ.get("HTTP_ORIGIN")
        # A POST from another site (CSRF) carries neither our cookie's token nor our Origin.
        forged = (origin is not None and origin != _origin(self.base)) or environ.get("HTTP_SEC_FETCH_SITE") == "cross-site"
        if forged or not browser or not hmac.compare_digest(form.get("csrf", ""), digest(browser, "csrf")):
            self.service.refuse("unknown", "step_up", "step_up_csrf")
            return self._page(start_response, "403 Forbidden", "Not approved", "This form did not come from this page. Open the link from Slack again.")  # fmt: skip
        # The link first: a POST without a live link (nobody authenticated) must cost no Vault call.
        self.service.step_up_link(form.get("t", ""))
        url, state = self.flow.begin(digest(browser, "nonce"))
        self.service.begin_step_up(form.get("t", ""), state, digest(browser, "browser"))
        start_response("303 See Other", [("Location", url), *self._headers()])
        return [b""]

    def _back(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Back from the IdP: the flow is taken once, in the browser that began it; the signed-in person must be the
        approver who clicked; then Vault's control group (their own token) and the core record the approval."""
        query = _query(environ)
        browser = _cookie(environ)
        link = self.service.arrive_step_up(query.get("state", ""), digest(browser, "browser"))
        try:
            if query.get("error") or not query.get("code"):
                raise SignInRefused(f"The sign-in did not complete ({query.get('error') or 'no code'}); nothing was recorded.", "step_up_signin_failed")  # fmt: skip
            with self.flow.complete(query["state"], query["code"], digest(browser, "nonce"), link.slack_user) as approver:
                request = self.service.approve_signed_in(link, approver)
        except SignInRefused as refusal:
            self.service.refuse_step_up(link, refusal.rule)
            raise
        done = f"Approved {request.id} with sign-in. {_status(request)} You can close this page."
        return self._page(start_response, "200 OK", "Approved", done, tone="done", request=request, clear=True)

    # rendering ----------------------------------------------------------------------------------------

    def _headers(self, form_to: str = "") -> list[tuple[str, str]]:
        csp = (
            f"default-src 'none'; style-src 'self'; form-action 'self'{' ' + form_to if form_to else ''}; "
            "frame-ancestors 'none'; base-uri 'none'"
        )  # the form may lead to the IdP (a 303 there), nothing else may load or run
        return [
            ("Content-Security-Policy", csp),
            ("Referrer-Policy", "same-origin"),  # the link's secret never leaves for the IdP in a Referer
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Cache-Control", "no-store"),
        ]

    def _page(
        self,
        start_response: StartResponse,
        status: str,
        title: str,
        message: str,
        tone: str = "refused",
        request: Request | None = None,
        form: dict[str, str] | None = None,
        cookie: str = "",
        clear: bool = False,
    ) -> list[bytes]:
        scope = self.catalog.scopes.get(request.scope) if request is not None else None
        html = self.env.get_template("stepup.html").render(
            title=title,
            message=message,
            tone=tone,
            request=request,
            description=scope.description if scope is not None else "",
            duration=format_duration(request.duration) if request is not None else "",
            vault=scope is not None and scope.vault_enforced,
            form=form,
        )
        form_to = ""
        if form is not None:
            try:
                form_to = self.flow.idp_origin()
            except SignInRefused:
                log.warning("the IdP's origin is unknown (Vault unreachable?): the sign-in form can only fail")
        headers = self._headers(form_to)
        if cookie:
            headers.append(("Set-Cookie", cookie))
        if clear:
            headers.append(("Set-Cookie", f"{COOKIE}=; Path=/stepup; HttpOnly; SameSite=Lax; Max-Age=0"))
        return self._send(start_response, status, html.encode(), "text/html; charset=utf-8", headers)

    def _send(
        self, start_response: StartResponse, status: str, data: bytes, kind: str, headers: list[tuple[str, str]] | None = None
    ) -> list[bytes]:
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(data))), *(headers or self._headers())])
        return [data]


def _status(request: Request) -> str:
    if request.approvals and len(request.approvals) < request.approval.required:
        return f"It now has {len(request.approvals)} of {request.approval.required} approvals."
    return f"It is {request.state}."


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(str(environ.get("QUERY_STRING", "")), max_num_fields=8).items()}


def _form(environ: dict[str, Any]) -> dict[str, str]:
    body = read_body(environ, FORM_LIMIT) or b""
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=8).items()}


def _cookie(environ: dict[str, Any]) -> str:
    try:
        jar = SimpleCookie(str(environ.get("HTTP_COOKIE", "")))
    except CookieError:
        return ""
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else ""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
