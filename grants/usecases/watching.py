"""Watching what justified a grant: a grant whose ticket closed ends (`end_when_closed`), revoked by `system`."""

from __future__ import annotations

import logging

from grants.domain import Request, State
from grants.lifecycle import Event
from grants.tickets import TrackerUnavailable
from grants.usecases import granting
from grants.usecases.deps import Deps

log = logging.getLogger(__name__)


def watch_tickets(deps: Deps) -> list[Request]:
    """Look up the ticket of every active grant whose scope ends it with its ticket; end those whose ticket is closed
    (or gone). A tracker that cannot be asked ends nothing: the grant's own end (and Vault's TTL) still holds."""
    ended = []
    for request in deps.requests.find(states={State.ACTIVE}):
        scope = deps.catalog.scopes.get(request.scope)
        if request.ticket is None or scope is None or scope.ticket is None or not scope.ticket.end_when_closed:
            continue
        name, key = request.ticket.split(":", 1)
        tracker, settings = deps.trackers.get(name), deps.catalog.settings.trackers.get(name)
        if tracker is None or settings is None:
            continue
        try:
            ticket = tracker.ticket(key)
        except TrackerUnavailable as exc:
            log.warning("cannot watch %s for %s: %s", request.ticket, request.id, exc)
            continue
        if ticket is not None and ticket.open:
            continue
        cause = {"cause": "ticket_closed", "ticket": ticket.evidence(name) if ticket else {"tracker": name, "key": key}}
        done = granting.end(deps, request, Event.REVOKED, "system", **cause)  # the ticket is told with the change
        if done.state is State.REVOKED:
            ended.append(done)
    return ended
