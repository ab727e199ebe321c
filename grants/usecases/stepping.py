"""Step-up links as use cases: offered on an Approve click, opened, begun and finished once; every refusal audited."""

from __future__ import annotations

from typing import NoReturn

from grants.domain import NotAllowed, Request
from grants.ports import StepUpLinks
from grants.stepup import StepUpLink, digest, new_secret
from grants.usecases.deps import Deps

AGAIN = "Click Approve in Slack again for a new link."


def links_of(deps: Deps) -> StepUpLinks:
    if deps.step_up_links is None:
        raise NotAllowed(
            "Step-up sign-in is not set up on this bot, so this scope cannot be approved.", rule="step_up_unavailable"
        )
    return deps.step_up_links


def offer(deps: Deps, request: Request, decision: str, actor: str) -> str:
    """A new link for `actor` to approve `decision` after a sign-in; the secret goes to them alone (the store keeps a
    digest). Each click makes its own link: a sign-in is never cached between approvals."""
    secret, now = new_secret(), deps.clock.now()
    ttl = deps.catalog.settings.step_up.link_ttl
    links_of(deps).add(StepUpLink(digest(secret, "link"), request.id, decision, actor, now, now + ttl))
    return secret


def opened(deps: Deps, secret: str) -> StepUpLink:
    """The link behind `secret`, if it is unused and in time."""
    link = links_of(deps).get(digest(secret, "link"))
    if link is None:
        refuse(deps, "unknown", "step_up_link_unknown", None, f"This is not a link jitbot made (or it was mistyped). {AGAIN}")
    if link.used_at is not None:
        # Someone opened it before (a forwarded or captured link): the approver asks for a new one.
        refuse(deps, link.slack_user, "step_up_link_reused", _request(deps, link), f"This link was already used. {AGAIN}")
    if deps.clock.now() >= link.expires_at:
        refuse(deps, link.slack_user, "step_up_link_expired", _request(deps, link), f"This link has expired. {AGAIN}")
    return link


def begin(deps: Deps, secret: str, state: str, browser: str) -> StepUpLink:
    """Spend the link on one sign-in from one browser (compare-and-swap: two tabs racing get one sign-in)."""
    link = opened(deps, secret)
    if not links_of(deps).begin(link.key, state, browser, deps.clock.now()):
        refuse(deps, link.slack_user, "step_up_link_reused", _request(deps, link), f"This link was already used. {AGAIN}")
    return link


def arrive(deps: Deps, state: str, browser: str) -> StepUpLink:
    """The link whose sign-in came back with `state`, taken away (a replayed callback finds nothing), if it came back
    to the browser that started it and in time."""
    link = links_of(deps).finish(state)
    if link is None:
        refuse(
            deps, "unknown", "step_up_state_unknown", None, f"This sign-in was not started here, or it came back already. {AGAIN}"
        )
    # The flow is bound to the browser that started it: a code carried to another browser (a phished redirect) is void.
    if link.browser != browser:
        refuse(
            deps,
            link.slack_user,
            "step_up_other_browser",
            _request(deps, link),
            f"This sign-in began in another browser. {AGAIN}",
        )
    started = link.used_at or link.created_at
    if deps.clock.now() >= started + deps.catalog.settings.step_up.link_ttl:
        refuse(deps, link.slack_user, "step_up_link_expired", _request(deps, link), f"This sign-in took too long. {AGAIN}")
    return link


def refused(deps: Deps, link: StepUpLink, rule: str) -> None:
    """Audit a sign-in that did not prove the link's approver (someone else signed in, the IdP refused)."""
    deps.reject(link.slack_user, "step_up", rule, _request(deps, link))


def vault_refused(deps: Deps, link: StepUpLink, request: Request, why: str) -> NoReturn:
    """Vault would not count the signed-in approver's authorization: nothing is recorded as approved, the refusal is
    audited, and the person is told what an operator must fix (the request still waits for its approvers)."""
    deps.reject(link.slack_user, "approve", "vault_refused", request)
    raise NotAllowed(
        f"Vault refused your authorization of {request.id}, so it was not approved ({why}). The request still waits. "
        "Ask a Vault admin to link your Slack ID to your Vault entity and to check that the entity is in this scope's "
        "approver group (`jitbot vault sync` writes it), then click Approve in Slack again for a new link.",
        rule="vault_refused",
    )


def refuse(deps: Deps, actor: str, rule: str, request: Request | None, message: str) -> NoReturn:
    deps.reject(actor, "step_up", rule, request)
    raise NotAllowed(message, rule=rule)


def _request(deps: Deps, link: StepUpLink) -> Request | None:
    return deps.requests.get(link.request_id)
