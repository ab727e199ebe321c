"""The demo's approvals bound to more than a click: a scope whose credential OpenBao's control group releases only
after two approvers each signed in (password + TOTP) on the step-up page, and a grant that ends when its Jira ticket
is resolved. The approvers' IdP is OpenBao's own OIDC provider (`devkit/stepup.py`); Jira is `devkit/jira.py`."""

from __future__ import annotations

import html
import re
import time
from typing import TYPE_CHECKING

import requests

from devkit.demo.tools import DemoError
from devkit.jira import adf_text
from devkit.standin import message_text
from devkit.stepup import LINK, OpenBaoIdP, SignInError, StepUpBrowser
from grants.adapters.control_groups import VaultControlGroups
from grants.audit import AuditQuery

if TYPE_CHECKING:
    from devkit.demo.steps import Stage

DANA, ARI, BEN = "U0DEV0001", "U0APPR001", "U0APPR002"
VAULTED, TICKETED, TICKET = "payments-keys", "payments-support", "PAY-7"
_TAG = re.compile(r"<[^>]+>")
_SLACK_ID = re.compile(r"\bU0[A-Z0-9]{7,}\b")


def play_context(stage: Stage) -> None:
    vault_enforced_with_sign_in(stage)
    ends_when_its_ticket_closes(stage)


# --- approval = "vault", step_up = true ---------------------------------------------------------------------


def vault_enforced_with_sign_in(stage: Stage) -> None:
    from devkit.demo.steps import _request_id, _show_dead, _token_facts, _wrapping_token, unwrap

    n = stage.narrator
    n.step("Dana asks for payments-keys: Vault itself releases it, after two approvers each sign in with TOTP")
    idp = _identity_provider(stage)
    request_id = _request_id(stage.slash(DANA, f"{VAULTED} 15m CHG-2300 rotate the payment keys"))
    stage.approvers_message(request_id, "[Approve]")
    stage.settle()
    n.note("the bot's own token asked OpenBao for the credential and got only a pending, wrapped request:")
    n.say("the control group releases it once two approvers' own Vault identities authorized it", 4)
    _control_group(stage, idp, request_id, authorized=[])
    for approver, so_far in ((ARI, [ARI]), (BEN, None)):
        _approve_on_the_page(stage, idp, approver, request_id)
        if so_far is not None:
            _control_group(stage, idp, request_id, authorized=so_far)
    delivered = stage.dm_about(DANA, request_id, "unwrap", timeout=20)
    stage.approvers_message(request_id, "Active")
    stage.settle()
    token = unwrap(stage, _wrapping_token(message_text(delivered)))
    secret = stage.bao.must("kv get", "secret/payments/stripe", token=token)["data"]["data"]
    n.shell("Dana", "bao kv get secret/payments/stripe", [f"api_key = {secret['api_key']}"], "VAULT_TOKEN=the unwrapped token")
    info = stage.bao.must("token lookup", token=token)["data"]
    n.shell("Dana", "bao token lookup", _token_facts(info)[:3], "same token")
    if sorted(info["policies"]) != ["default", "payments-read", "payments-write"] or info["explicit_max_ttl"] != 900:
        raise DemoError(f"the payments-keys credential is not scoped as approved: {_token_facts(info)}")
    n.note("one credential, released by Vault after two sign-ins; the wrapping token was single use")
    stage.slash(DANA, f"revoke {request_id}")
    stage.reply(stage.client.last_response_name or "", "Revoked")
    stage.settle()
    _show_dead(stage, token, "bao kv get secret/payments/stripe", "kv get", "secret/payments/stripe")
    n.note("revoked: the credential no longer works")


def _identity_provider(stage: Stage) -> OpenBaoIdP:
    """The operator's one-time setup: OpenBao's OIDC provider as the approvers' IdP (in production: Okta, Entra,
    Keycloak), each approver's entity linked to their Slack ID with a TOTP secret; then `jitbot vault sync` again."""
    from devkit.demo import sync_lines

    n, idp = stage.narrator, stage.idp
    if idp is None or stage.bot.runtime is None:
        raise DemoError("this stage has no IdP for the step-up sign-in")
    for who, (login, _password) in idp.people.items():
        idp.link(who)
        n.shell(
            "The operator",
            f"bao write auth/userpass/users/{login} password=…; bao write identity/entity name={login}; aliases …",
            [f"{n.name(who)}: one entity, known by the login {login} and by the Slack ID {who}"],
        )
    web_url = stage.bot.runtime.catalog.settings.web_url
    idp.identity_provider(f"{web_url}/stepup/callback")
    for who in idp.people:
        n.hide(idp.totp[who])
    n.shell(
        "The operator",
        "bao write identity/oidc/provider/jitbot …; bao write auth/oidc/config …; bao write identity/mfa/method/totp …",
        [
            f"OpenBao's OIDC provider is the IdP; its client may return only to {web_url}/stepup/callback",
            "TOTP login MFA for the approvers; each one's secret went to their authenticator app (not shown)",
        ],
    )
    synced = sync_lines(stage.settings, stage.operator_token)
    n.shell("The operator", "jitbot vault sync", [line for line in synced if VAULTED in line or "approver" in line][:6])
    problems = [line for line in synced if VAULTED in line and line.startswith(("error:", "warning:"))]
    if problems:
        raise DemoError(f"jitbot vault sync still names {VAULTED}: {problems}")
    return idp


def _control_group(stage: Stage, idp: OpenBaoIdP, request_id: str, authorized: list[str]) -> None:
    """What OpenBao itself says of the request's control group, asked by the operator: who authorized it so far."""
    n = stage.narrator
    assert stage.bot.runtime is not None
    gates = stage.bot.runtime.service.deps.control_groups
    if not isinstance(gates, VaultControlGroups):
        raise DemoError(f"the bot's control groups are not Vault's: {gates!r}")
    accessor = gates.accessor(request_id)
    n.hide(accessor, keep=4)
    data = stage.bao.must("write", "sys/control-group/request", f"accessor={accessor}", token=stage.operator_token)["data"]
    entities = {str(a.get("entity_id")) for a in data.get("authorizations") or []}
    names = {entity: n.name(who) for who, entity in idp.entities.items()}
    shown = ", ".join(sorted(names.get(e, e) for e in entities)) or "nobody"
    n.shell(
        "The operator",
        "bao write sys/control-group/request accessor=…",
        [f"approved       {str(data.get('approved')).lower()}", f"authorized by  {shown}"],
    )
    if data.get("approved") or entities != {idp.entities[who] for who in authorized}:
        raise DemoError(f"OpenBao's control group for {request_id} should be pending, authorized by {authorized}: {data}")


def _approve_on_the_page(stage: Stage, idp: OpenBaoIdP, approver: str, request_id: str) -> None:
    n, name = stage.narrator, stage.narrator.name(approver)
    stage.click(approver, "Approve", request_id)
    reply = stage.wait(
        f"the private link for {name}",
        lambda: next(
            (r for r in stage.standin.responses_to(stage.client.last_response_name or "") if "stepup" in str(r.get("text"))),
            None,
        ),
    )
    found = LINK.search(str(reply.get("text")))
    if found is None or reply.get("response_type") != "ephemeral":
        raise DemoError(f"the Approve click on {request_id} did not answer {name} alone with a step-up link: {reply}")
    link = found.group(1)
    n.hide(link.split("t=", 1)[1], keep=4)
    stage.settle()
    assert stage.bot.runtime is not None
    before = stage.bot.runtime.store.get(request_id)
    if before is None or before.state.value != "pending" or approver in before.approvals:
        raise DemoError(f"{name}'s click on [Approve] alone moved {request_id}: {before and before.state.value}")
    if not before.approvals:
        n.note("the click approved nothing by itself: only the sign-in behind the link counts")
    browser = StepUpBrowser(stage.bot.url, idp, requests.Session())
    page = browser.open(link)
    n.shell(name, f"open {link}", [f"HTTP {page.status_code}", *_page(stage, page.text)], "a browser, over plain HTTP")
    started = browser.submit(page)
    idp_url = started.headers.get("Location", "")
    if started.status_code != 303 or not idp_url.startswith(idp.addr):
        raise DemoError(f"[Sign in and approve] did not lead {name} to the IdP: HTTP {started.status_code} {started.text[:200]}")
    n.shell(name, "[Sign in and approve]", [f"HTTP 303 → {idp_url.split('?')[0]}?… (PKCE, nonce, prompt=login, max_age)"])
    login = idp.people[approver][0]
    try:
        code = idp.authorize_at_idp(idp_url, idp.idp_login(approver))
    except SignInError as error:
        raise DemoError(f"{name} could not sign in at the IdP: {error}") from None
    n.shell(
        name, f"sign in as {login}: password …, then the TOTP code from the app", ["signed in; the IdP sends the browser back"]
    )
    n.hide(code, keep=4)
    state = idp_url.split("state=", 1)[1].split("&", 1)[0]
    back = browser.session.get(f"{stage.bot.url}/stepup/callback", params={"state": state, "code": code}, timeout=10)
    answer = _page(stage, back.text)
    n.shell(name, "GET /stepup/callback?state=…&code=…", [f"HTTP {back.status_code}", *answer[:2]])
    if back.status_code != 200 or "Approved" not in back.text:
        raise DemoError(f"the step-up page did not record {name}'s approval: HTTP {back.status_code} {answer}")
    stage.settle()


def _page(stage: Stage, text: str) -> list[str]:
    """What a person reads on the page: its heading, its message and the request's table, one line each (Slack IDs
    shown with the name the demo gives them)."""
    shown = []
    for tag in ("h1", "p", "caption", "tr"):
        for part in re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", text, re.S):
            line = " ".join(html.unescape(_TAG.sub(" ", part)).split())
            if line:
                shown.append(
                    _SLACK_ID.sub(lambda m: f"{stage.narrator.name(m.group(0))} ({m.group(0)})", line).replace(" .", ".")
                )
    return shown


# --- [scopes.X.ticket] end_when_closed ------------------------------------------------------------------------


def ends_when_its_ticket_closes(stage: Stage) -> None:
    from devkit.demo.steps import _request_id, _show_dead, _wrapping_token, unwrap

    n, jira = stage.narrator, stage.jira
    if jira is None:
        raise DemoError("this stage has no Jira stand-in")
    n.step(f"Dana asks for payments-support citing Jira {TICKET}; Ari approves; support resolves {TICKET}; the grant ends")
    jira.add(TICKET, summary="Refunds stuck for merchant 4411")
    n.note(f"{TICKET} is open in Jira (the demo's stand-in at {jira.url}); payments-support needs an open ticket")
    request_id = _request_id(stage.slash(DANA, f"{TICKETED} 30m {TICKET} replay stuck refunds"))
    stage.approvers_message(request_id, "[Approve] [Deny]")
    stage.settle()
    stage.click(ARI, "Approve", request_id)
    delivered = stage.dm_about(DANA, request_id, "unwrap")
    stage.settle()
    token = unwrap(stage, _wrapping_token(message_text(delivered)), again=False)
    secret = stage.bao.must("kv get", "secret/payments/stripe", token=token)["data"]["data"]
    n.shell("Dana", "bao kv get secret/payments/stripe", [f"api_key = {secret['api_key']}"], "VAULT_TOKEN=the unwrapped token")
    stage.wait(f"the bot's comments on {TICKET}", lambda: len(jira.issues[TICKET].comments) >= 2 or None)
    n.say(f"[Jira {TICKET}] comments by jitbot:", 2)
    for comment in jira.issues[TICKET].comments:
        n.say("- " + adf_text(comment).replace("\n", " "), 4)
    jira.close(TICKET)
    closed = time.monotonic()
    n.say(f"▶ Support resolves {TICKET} in Jira (status Done)")
    n.note("nobody tells jitbot: its watcher looks at the tickets of end_when_closed grants (JITBOT_TICKET_WATCH: 1s here)")
    stage.dm_about(DANA, request_id, "was revoked", timeout=20)
    took = time.monotonic() - closed
    stage.approvers_message(request_id, "Revoked")
    stage.settle()
    assert stage.bot.runtime is not None
    events = stage.bot.runtime.store.events(AuditQuery(scope=TICKETED))
    revoked = [e for e in events if e.request_id == request_id and e.event == "revoked"]
    if not revoked or revoked[-1].actor != "system" or revoked[-1].detail.get("cause") != "ticket_closed":
        raise DemoError(f"the grant was not revoked by system for its closed ticket: {[(e.event, e.actor) for e in revoked]}")
    n.note(f"revoked by system {took:.1f}s after {TICKET} was resolved; the audit event holds the ticket as then seen")
    stage.wait(f"the bot's comment on {TICKET} about the end", lambda: len(jira.issues[TICKET].comments) >= 3 or None)
    n.say(f"[Jira {TICKET}] and on the ticket:", 2)
    for comment in jira.issues[TICKET].comments[2:]:
        n.say("- " + adf_text(comment).replace("\n", " "), 4)
    _show_dead(stage, token, "bao kv get secret/payments/stripe", "kv get", "secret/payments/stripe")
    n.note("the ticket that justified the access closed, and the access ended with it")
