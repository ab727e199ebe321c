"""Unit tests of `grants/usecases/granting.py`: issuing and ending a credential, Vault and Slack failing, the ticket's
comments."""

from __future__ import annotations

from datetime import timedelta

from grants.audit import AuditQuery, verify
from grants.domain import State
from tests.catalogs import APPROVER_1, APPROVER_3, REQUESTER
from tests.unit.usecases.worlds import OPEN, active_grant, ticketed


def test_happy_path_issues_expires_and_chains(core):
    service, store, issuer, notifier, timer = core.service, core.store, core.issuer, core.notifier, core.timer
    request = service.request(REQUESTER, "payments-read", "30m", "INC-4411 replay stuck refunds")
    assert request.state is State.PENDING and len(request.id) <= 16
    active = service.approve(request.id, APPROVER_1)
    assert active.state is State.ACTIVE and active.grant.handle.id in issuer.live
    assert active.expires_at == active.grant.issued_at + timedelta(minutes=30)
    timer.advance(timedelta(minutes=29, seconds=59))
    assert store.get(request.id).state is State.ACTIVE
    timer.advance(timedelta(seconds=1))
    assert store.get(request.id).state is State.EXPIRED and not issuer.live
    assert store.names() == ["requested", "approved", "issued", "expiry_warned", "expired"]
    assert verify(store.events(AuditQuery())).intact
    assert ("credential", (request.id, active.grant.handle.id)) in notifier.sent


def test_vault_down_at_issue_fails_cleanly(core):
    service, store, issuer, notifier = core.service, core.store, core.issuer, core.notifier
    issuer.down = True
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    failed = service.approve(request.id, APPROVER_1)
    assert failed.state is State.FAILED and store.names()[-1] == "issue_failed"
    assert ("told", (request.id, "issue_failed")) in notifier.sent


def test_slack_failure_never_undoes_a_decision(core):
    service, _store, issuer, notifier = core.service, core.store, core.issuer, core.notifier
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    notifier.broken = True
    assert service.approve(request.id, APPROVER_1).state is State.ACTIVE and issuer.live


def test_a_comment_the_tracker_refuses_undoes_nothing() -> None:
    world, tracker = ticketed(None, OPEN)
    original = tracker.comment

    def refuse(key: str, text: str) -> None:
        tracker.down = True
        try:
            original(key, text)
        finally:
            tracker.down = False

    tracker.comment = refuse  # type: ignore[method-assign]
    request = world.service.request(REQUESTER, "payments-write", "10m", "PAY-7 x")
    assert world.service.approve(request.id, APPROVER_1).state is State.PENDING
    assert world.service.approve(request.id, APPROVER_3).state is State.ACTIVE
    tracker.comment = original  # type: ignore[method-assign]
    world.clock.advance(timedelta(minutes=1))
    world.service.deps.kick()  # the outbox retries the comments the tracker refused
    texts = [text for _, text in tracker.comments]
    assert any("requested payments-write for 10m" in t for t in texts) and any("access granted until" in t for t in texts)


def test_the_ticket_is_told_of_the_request_the_grant_and_its_end() -> None:
    world, tracker, rid = active_grant()
    world.service.revoke(rid, REQUESTER)
    texts = [text.removeprefix(f"jitbot {rid}: ") for _, text in tracker.comments]
    assert texts[0] == f"requested payments-write for 10m by Slack user {REQUESTER}"
    assert texts[1].startswith("access granted until ") and texts[1].endswith(f"approved by {APPROVER_1}, {APPROVER_3}")
    assert texts[2] == f"access revoked by {REQUESTER}"
