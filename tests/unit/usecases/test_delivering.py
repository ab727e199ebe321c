"""Unit tests of `grants/usecases/delivering.py`, the outbox on the fakes: notices commit with their change, go out in
order per request, retry with backoff (honouring Retry-After), give up after a bounded time with an audit event and an
alert; credentials are re-checked."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot import messages
from grants import outbox
from grants.lifecycle import Event, State
from grants.outbox import Failure
from grants.usecases import delivering
from tests.catalogs import APPROVER_1, APPROVER_2, REQUESTER, make_catalog
from tests.fakes import drain


def rate_limited(exc: Exception) -> Failure:
    return Failure("ratelimited", True, timedelta(seconds=30))


def test_notices_are_written_with_the_change_and_nothing_with_a_lost_race(core):
    core.notifier.broken = True  # Slack is down: the notices wait in the outbox, the decision stands
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    assert [n.kind for n in core.store.pending()] == ["opened"]
    deps = core.service.deps
    stale = request.advance(Event.NUDGED)
    assert deps.commit(request, stale, Event.NUDGED, REQUESTER, notices=[outbox.changed(request.id)])
    assert not deps.commit(request, stale, Event.NUDGED, REQUESTER, notices=[outbox.changed(request.id)])  # CAS lost
    assert [n.kind for n in core.store.pending()] == ["opened", "changed"]  # the loser's notice was not written


def test_a_request_s_notices_go_out_in_order_even_after_a_failure(core):
    core.notifier.broken = True
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    core.service.deny(request.id, APPROVER_1, "not now")
    assert core.notifier.sent == []
    core.notifier.broken = False
    deps = core.service.deps
    # The first notice's retry is not due yet: the later ones of the same request wait behind it.
    assert delivering.run_once(deps, "w", rate_limited) == 0
    core.clock.advance(timedelta(seconds=3))
    drain(core.service)
    assert core.notifier.kinds() == ["opened", "changed", "told"]


def test_retry_backs_off_honouring_retry_after_then_gives_up_with_audit_and_alert(core):
    core.notifier.broken = True
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    row = core.store.outbox[0]
    assert row["attempts"] == 1  # the commit's own kick tried once
    deps = core.service.deps
    delays = []
    while row["failed_at"] is None:
        before = core.clock.now()
        core.clock.current = row["next_attempt_at"]
        delays.append(row["next_attempt_at"] - before)
        delivering.run_once(deps, "w", rate_limited)
    assert delays[0] == outbox.BACKOFF_FIRST  # the commit's own attempt failed without a Retry-After
    assert all(d >= timedelta(seconds=30) for d in delays[1:])  # never sooner than Slack's Retry-After
    assert core.clock.now() - row["created_at"] >= outbox.GIVE_UP_AFTER > core.clock.now() - row["created_at"] - delays[-1]
    failed = [e for e in core.store.audit if e.event == Event.NOTIFICATION_FAILED]
    assert len(failed) == 1 and failed[0].request_id == request.id and failed[0].detail["error"] == "ratelimited"
    assert [n.kind for n in core.store.pending()] == ["alert"]  # the alert about it is queued (Slack is still down)
    core.notifier.broken = False
    core.clock.advance(outbox.BACKOFF_FIRST)
    drain(core.service)
    assert core.notifier.kinds() == ["alert"]
    kind, about, context = core.notifier.sent[0][1]  # type: ignore[misc]
    assert (kind, about, context["error"]) == (outbox.Alert.GAVE_UP, request.id, "ratelimited")
    assert "could not be delivered (ratelimited); gave up" in messages.alert_text(kind, about, context)


def test_an_alert_queued_as_text_by_an_older_release_is_still_delivered(core):
    core.store.enqueue([outbox.Notice(outbox.ALERT, None, {"text": "Revoking <@U0X> failed"})], core.clock.now())
    drain(core.service)
    assert core.notifier.sent == [("alert", (outbox.Alert.PLAIN, None, {"text": "Revoking <@U0X> failed"}))]
    assert messages.alert_text(outbox.Alert.PLAIN, None, {"text": "Revoking <@U0X> failed"}) == "Revoking &lt;@U0X&gt; failed"


def test_news_is_stored_by_name_and_read_back_as_its_member():
    for news in (*Event, *outbox.News):
        assert outbox.news_of(outbox.told("JIT-1", news).args["news"]) is news
    with pytest.raises(ValueError):
        outbox.news_of("no_such_news")


def test_backoff_grows_and_is_capped():
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert outbox.backoff(30) == outbox.BACKOFF_MAX
    assert outbox.backoff(1, timedelta(seconds=45)) == timedelta(seconds=45)


def test_a_permanent_failure_gives_up_at_once(core):
    core.notifier.broken = True
    core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    core.clock.advance(timedelta(seconds=5))
    delivering.run_once(core.service.deps, "w", lambda exc: Failure("invalid_blocks", retryable=False))
    assert core.store.outbox[0]["failed_at"] is not None
    assert core.store.names()[-1] == Event.NOTIFICATION_FAILED


def test_an_unreachable_approver_does_not_silence_the_others(core):
    core.notifier.unreachable = {APPROVER_2}
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    opened = [p for k, p in core.notifier.sent if k == "opened"]
    assert opened and APPROVER_1 in opened[0][1] and APPROVER_2 not in opened[0][1]
    failed = [e for e in core.store.audit if e.event == Event.NOTIFICATION_FAILED]
    assert failed[0].detail["people"] == [APPROVER_2] and not failed[0].detail["nobody_reached"]
    assert "alert" in core.notifier.kinds() and ("told", (request.id, "unreachable")) not in core.notifier.sent


def test_nobody_reachable_tells_the_requester_at_once(core):
    catalog = make_catalog()
    core.notifier.unreachable = set(catalog.approvers(catalog.scopes["payments-read"]))
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    assert ("told", (request.id, "unreachable")) in core.notifier.sent and "alert" in core.notifier.kinds()
    assert core.store.get(request.id).state is State.PENDING  # the request stands; people know it cannot move


def test_an_undelivered_credential_is_replaced_after_its_delivery_window(core):
    core.notifier.broken = True  # the credential DM fails (as when the process dies before it)
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    active = core.service.approve(request.id, APPROVER_1)
    old = active.grant.handle.id
    assert old in core.issuer.live and not any(k == "credential" for k in core.notifier.kinds())
    core.notifier.broken = False
    core.clock.advance(core.service.deps.deliver_within - timedelta(seconds=1))
    drain(core.service)
    assert not any(k == "credential" for k in core.notifier.kinds())  # the DM may still be on its way: wait
    core.clock.advance(timedelta(seconds=2))
    drain(core.service)
    now = core.store.get(request.id)
    assert now.state is State.ACTIVE and now.grant.handle.id != old and now.grant.expires_at == active.grant.expires_at
    assert old not in core.issuer.live and now.grant.handle.id in core.issuer.live  # exactly one live credential
    assert [k for k in core.notifier.kinds() if k == "credential"] == ["credential"]
    assert core.store.names().count("reissued") == 1
    core.clock.advance(core.service.deps.deliver_within * 2)
    drain(core.service)  # the new one was delivered: its check is settled, nothing more happens
    assert core.store.names().count("reissued") == 1


def test_an_undelivered_credential_is_replaced_once_its_dm_is_late_and_its_wrap_revoked(core):
    core.notifier.broken = True
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    active = core.service.approve(request.id, APPROVER_1)
    wrap = f"wrap-{core.issuer.issued}"
    core.notifier.broken = False
    core.clock.advance(core.service.deps.deliver_within + timedelta(seconds=1))  # far inside the 5-minute wrap TTL
    drain(core.service)
    assert core.store.get(request.id).grant.handle != active.grant.handle and core.store.names().count("reissued") == 1
    assert wrap not in core.issuer.wraps  # the lost DM's wrapping token can no longer be unwrapped


def test_a_credential_unwrapped_before_its_check_is_not_replaced(core):
    """The DM arrived but its settle was lost (a crash right after Slack took it): the requester unwrapped it."""
    core.notifier.broken = True
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    active = core.service.approve(request.id, APPROVER_1)
    core.issuer.wraps.clear()  # unwrapped by its person: the wrapping token is gone
    core.notifier.broken = False
    core.clock.advance(core.service.deps.deliver_within * 2)
    drain(core.service)
    assert core.store.get(request.id).grant.handle == active.grant.handle and "reissued" not in core.store.names()
    assert active.grant.handle.id in core.issuer.live and not any(k == "credential" for k in core.notifier.kinds())


def test_a_credential_check_waits_while_vault_cannot_say_whether_it_was_unwrapped(core):
    core.notifier.broken = True
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    active = core.service.approve(request.id, APPROVER_1)
    core.notifier.broken, core.issuer.down = False, True
    core.clock.advance(core.service.deps.deliver_within * 2)
    drain(core.service)
    assert core.store.get(request.id).grant.handle == active.grant.handle and "reissued" not in core.store.names()
    core.issuer.down = False
    core.clock.advance(timedelta(minutes=1))
    drain(core.service)
    assert core.store.names().count("reissued") == 1


def test_a_delivered_credential_is_not_replaced(core):
    request = core.service.request(REQUESTER, "payments-read", "10m", "INC-1")
    active = core.service.approve(request.id, APPROVER_1)
    core.clock.advance(core.service.deps.deliver_within * 2)
    drain(core.service)
    assert core.store.get(request.id).grant.handle == active.grant.handle and "reissued" not in core.store.names()
