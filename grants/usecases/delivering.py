"""Delivering the outbox: one notice at a time, re-rendered from the database, and what to do when it cannot arrive."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from grants import outbox
from grants.domain import AuditEvent, Request
from grants.lifecycle import Event
from grants.outbox import Alert, Entry, Failure, News, Notice, Unreachable
from grants.usecases import granting
from grants.usecases.deps import Deps

log = logging.getLogger(__name__)


def deliver(deps: Deps, notice: Notice) -> None:
    """Send one notice now; raises when it must be retried. People out of reach are audited and alerted
    (and, when nobody could be asked, the requester is told) instead of being retried forever."""
    if notice.kind == outbox.ALERT:
        kind, context = outbox.alert_of(notice.args)
        deps.notifier.alert(kind, notice.request_id, **context)
        return
    if notice.request_id is None:
        return
    if notice.kind == outbox.CREDENTIAL:
        granting.reissue(deps, notice.request_id, notice.args)
        return
    request = deps.requests.get(notice.request_id)
    if request is None:
        return
    if notice.kind == outbox.TICKET:
        granting.comment(deps, request, str(notice.args["text"]))  # a tracker that cannot be asked: retried
        return
    try:
        _send(deps, request, notice)
    except Unreachable as missed:
        unreachable(deps, request, notice, missed)


def _send(deps: Deps, request: Request, notice: Notice) -> None:
    args = notice.args
    if notice.kind == outbox.OPENED:
        deps.notifier.request_opened(request, frozenset(args["approvers"]))
    elif notice.kind == outbox.NOTICE:
        deps.notifier.approvers_notice(request, frozenset(args["approvers"]), str(args["notice"]))
    elif notice.kind == outbox.CHANGED:
        deps.notifier.request_changed(request)
    elif notice.kind == outbox.TOLD:
        deps.notifier.tell_requester(request, outbox.news_of(str(args["news"])), **dict(args.get("context") or {}))
    else:
        log.error("unknown notice kind %s; dropped", notice.kind, extra={"request_id": request.id})


def unreachable(deps: Deps, request: Request, notice: Notice, missed: Unreachable) -> None:
    """Everyone reachable has it; the rest is audited and alerted. Nobody at all: the requester learns it now,
    rather than waiting for a timeout nobody could prevent."""
    nobody = missed.reached == 0
    failed(deps, notice, request, people=missed.people, why=missed.why, nobody_reached=nobody)
    # User or channel IDs, as Slack named them: the chat side writes the mentions.
    alert = outbox.alert(Alert.UNREACHABLE, request.id, scope=request.scope, people=missed.people, why=missed.why, nobody=nobody)
    deps.enqueue(alert)
    if nobody and notice.kind != outbox.TOLD:
        deps.enqueue(outbox.told(request.id, News.UNREACHABLE, people=missed.people))


def failed(deps: Deps, notice: Notice, request: Request | None = None, **detail: object) -> None:
    """Audit that a notice did not (fully) arrive: the trail says who was never told what."""
    deps.record_trail(
        AuditEvent(
            event=Event.NOTIFICATION_FAILED,
            at=deps.clock.now(),
            actor="system",
            request_id=notice.request_id,
            scope=request.scope if request else None,
            subject=request.requester if request else None,
            detail={"notice": notice.kind, **({"what": notice.args["notice"]} if "notice" in notice.args else {}), **detail},
        )
    )


def give_up(deps: Deps, entry: Entry, now: datetime, error: str) -> None:
    """A notice undelivered for GIVE_UP_AFTER: stop retrying, audit it, and alert (unless it was the alert)."""
    deps.outbox.failed(entry.id, now)
    request = deps.requests.get(entry.notice.request_id) if entry.notice.request_id else None
    failed(deps, entry.notice, request, attempts=entry.attempts + 1, error=error)
    if entry.notice.kind != outbox.ALERT:
        deps.enqueue(outbox.alert(Alert.GAVE_UP, entry.notice.request_id, notice=entry.notice.kind, error=error))


def run_once(deps: Deps, worker: str, classify: Callable[[Exception], Failure], limit: int = 10) -> int:
    """Claim due notices (the heads of their requests' queues), deliver each, settle it; the number claimed."""
    entries = deps.outbox.claim(worker, deps.clock.now(), limit)
    for entry in entries:
        try:
            deliver(deps, entry.notice)
        except Exception as exc:
            failure = classify(exc)
            now = deps.clock.now()
            log.warning("delivery failed: %s", failure.code, extra={"request_id": entry.notice.request_id})
            if not failure.retryable or outbox.given_up(entry, now):
                give_up(deps, entry, now, failure.code)
            else:
                deps.outbox.retry_at(entry.id, now + outbox.backoff(entry.attempts + 1, failure.retry_after))
            continue
        deps.outbox.delivered(entry.id, deps.clock.now())
    return len(entries)
