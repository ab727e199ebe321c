"""What people may see: their own requests, what waits on them, open reviews; and who may audit."""

from __future__ import annotations

from grants.domain import NotAllowed, Request, State
from grants.lifecycle import OPEN
from grants.usecases.deps import Deps


def mine(deps: Deps, user: str) -> list[Request]:
    """The user's open requests and grants, then their most recent others (20 at most)."""
    open_ = deps.requests.find(requester=user, states=OPEN)
    seen = {r.id for r in open_}
    recent = [r for r in deps.requests.find(requester=user, limit=20) if r.id not in seen]
    return (open_ + recent)[:20] if len(open_) < 20 else open_


def waiting_on(deps: Deps, user: str) -> list[Request]:
    people, scopes = deps.people, deps.catalog.scopes
    mine_to_decide = [name for name, scope in scopes.items() if user in people.approvers(scope, escalated=True)]
    if not mine_to_decide:
        return []  # most people approve nothing: no query at all
    waiting = []
    for request in deps.requests.find(states=(State.PENDING, State.ACTIVE), scopes=mine_to_decide):
        scope = scopes.get(request.scope)
        if scope is None or request.requester == user or user in request.approvals:
            continue
        if request.state is State.PENDING and user in deps.waiting_approvers(scope, request):
            waiting.append(request)
        elif request.extension is not None and user in people.approvers(scope):
            waiting.append(request)
    return waiting


def open_reviews(deps: Deps, user: str | None = None) -> list[Request]:
    """Open break-glass reviews; for a user, those they may close (auditors see all)."""
    reviews = deps.requests.open_reviews()
    if user is None or user in deps.people.auditors():
        return reviews
    scopes = deps.catalog.scopes
    return [r for r in reviews if r.scope in scopes and user in deps.people.approvers(scopes[r.scope])]


def require_auditor(deps: Deps, user: str, action: str) -> None:
    if user not in deps.people.auditors():
        deps.reject(user, action, "not_an_auditor", None)
        raise NotAllowed("Only auditors named in the catalog can export the audit trail.", rule="not_an_auditor")
