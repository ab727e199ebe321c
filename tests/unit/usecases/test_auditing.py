"""Unit tests of `grants/usecases/auditing.py`: any worker anchors the chain head only over an anchor the stored chain
still continues (KV check-and-set); the auditor's check and the export are audited."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta

import pytest

from grants import outbox
from grants.audit import GENESIS_HASH, AnchorMoved, AuditQuery, chained, continues
from grants.credentials import CredentialError
from grants.domain import AuditEvent, NotAllowed
from grants.usecases.auditing import verify_trail
from tests.catalogs import APPROVER_1, AUDITOR, REQUESTER, make_catalog
from tests.fakes import Core, FakeAnchor, bootstrap


def anchored_core() -> tuple[Core, FakeAnchor]:
    core = bootstrap(make_catalog())
    anchor = FakeAnchor(core.clock)
    core.service.deps.anchor = anchor
    return core, anchor


def history(core: Core, n: int = 1) -> None:
    for i in range(n):
        request = core.service.request(REQUESTER, "payments-read", "10m", f"INC-{i}")
        core.service.approve(request.id, APPROVER_1)
        core.service.revoke(request.id, REQUESTER)


def refusals(core: Core) -> list[AuditEvent]:
    return [e for e in core.store.audit if e.event == "anchor_refused"]


def restart(core: Core, anchor: FakeAnchor) -> Core:
    """A new process over the same database and the same anchor (what a restart or another worker taking over is)."""
    fresh = bootstrap(make_catalog(), clock=core.clock, store=core.store)
    fresh.service.deps.anchor = anchor
    return fresh


def rehash(core: Core) -> None:
    """The insider rewrites a reason and re-hashes the whole chain (and so its head) to match."""
    prev, forged = GENESIS_HASH, []
    for event in core.store.audit:
        detail = {**event.detail, "reason": "routine"} if "reason" in event.detail else event.detail
        linked = chained(replace(event, detail=detail, hash=None, prev_hash=None), event.seq or 0, prev)
        forged.append(linked)
        prev = linked.hash or prev
    core.store.audit[:] = forged


def test_the_head_is_anchored_as_it_moves_and_the_trail_verifies() -> None:
    core, anchor = anchored_core()
    core.service.anchor_chain()
    assert [(a.seq, a.version) for a in anchor.versions] == [(0, 1)]  # an empty trail is anchored too (fail closed)
    history(core)
    core.service.anchor_chain()
    core.service.anchor_chain()  # nothing moved: no second write
    assert [(a.seq, a.version) for a in anchor.versions] == [(0, 1), (core.store.chain_head()[0], 2)]
    history(core)
    core.service.anchor_chain()
    assert anchor.versions[-1].seq == core.store.chain_head()[0] and verify_trail(core.store, anchor).intact


@pytest.mark.parametrize("tamper", ["truncate", "rehash"])
def test_a_tampered_trail_is_never_anchored_even_after_a_restart_and_new_events(tamper: str) -> None:
    core, anchor = anchored_core()
    history(core, 2)
    core.service.anchor_chain()
    good = anchor.latest()
    assert good is not None
    if tamper == "truncate":
        del core.store.audit[-3:]  # the insider deletes the newest events (the fake's head follows the rows)
    else:
        rehash(core)
    core = first = restart(core, anchor)
    core.service.anchor_chain()
    history(core, 2)  # the bot goes on and the trail's seq passes the anchored one
    for _ in range(3):
        core.service.anchor_chain()
    core = restart(core, anchor)  # and once more: a new process refuses again (and says so once)
    core.service.anchor_chain()
    core.service.anchor_chain()
    assert anchor.versions == [good]  # the forgery was never anchored
    assert len(refusals(core)) == 2 and all(e.actor == "system" for e in refusals(core))
    assert refusals(core)[0].detail["anchored_seq"] == good.seq
    assert [k for c in (first, core) for k in c.notifier.kinds() if k == "alert"] == ["alert", "alert"]  # one per process
    verdict = verify_trail(core.store, anchor)
    assert not verdict.intact and ("truncated" in verdict.why or "rewritten" in verdict.why), verdict


def test_anchoring_resumes_once_an_operator_re_anchors_the_current_head() -> None:
    core, anchor = anchored_core()
    history(core)
    core.service.anchor_chain()
    del core.store.audit[-2:]
    core.service.anchor_chain()
    assert len(refusals(core)) == 1
    seq, hash_ = core.store.chain_head()
    anchor.write(seq, hash_, anchor.versions[-1].version)  # the operator, with Vault rights the bot lacks (docs/operations.md)
    history(core)
    core.service.anchor_chain()
    assert anchor.versions[-1].seq == core.store.chain_head()[0] and len(refusals(core)) == 1
    assert verify_trail(core.store, anchor).intact


def test_two_workers_cannot_put_an_older_head_over_a_newer_one() -> None:
    core, anchor = anchored_core()
    history(core)
    core.service.anchor_chain()
    stale = anchor.latest()
    assert stale is not None
    history(core)
    restart(core, anchor).service.anchor_chain()  # the other worker anchors the newer head
    with pytest.raises(AnchorMoved):
        anchor.write(stale.seq, stale.hash, stale.version)  # what the slower worker would try
    core.service.anchor_chain()  # its next tick reads the anchor again and leaves it as it is
    assert anchor.versions[-1].seq == core.store.chain_head()[0] and refusals(core) == []


def test_the_chain_must_continue_the_anchored_event_to_the_head() -> None:
    core, anchor = anchored_core()
    history(core)
    core.service.anchor_chain()
    outside = anchor.latest()
    assert outside is not None
    head = core.store.chain_head()
    assert continues(core.store.events(AuditQuery(from_seq=outside.seq)), outside, head) == ""
    edited = replace(core.store.audit[outside.seq - 1], actor="U0SOMEONE")  # contents edited, hash left as it was
    core.store.audit[outside.seq - 1] = edited
    assert "rewritten" in continues(core.store.events(AuditQuery(from_seq=outside.seq)), outside, head)
    assert "truncated" in continues(iter(()), outside, (outside.seq - 1, "x"))


class UnwritableAnchor(FakeAnchor):
    """An anchor path the bot's policy does not cover (or a wrong mount): every write fails."""

    def write(self, seq: int, hash_: str, version: int) -> None:
        raise CredentialError("could not anchor the audit chain at secret/wrong: Forbidden: permission denied")


def alerts(core: Core) -> list[str]:
    return [str(row["notice"].args.get("alert")) for row in core.store.outbox if row["notice"].kind == outbox.ALERT]


def test_an_anchor_not_written_for_a_minute_is_one_alert_down_and_fails_verify() -> None:
    core = bootstrap(make_catalog())
    anchor = UnwritableAnchor(core.clock)
    core.service.deps.anchor = anchor
    history(core)
    with pytest.raises(CredentialError):
        core.service.anchor_chain()
    assert core.service.anchor_up() and "anchor_down" not in alerts(core)  # within its first minute
    assert verify_trail(core.store, anchor, core.clock.now()).intact
    core.clock.advance(timedelta(seconds=61))
    for _ in range(3):
        with pytest.raises(CredentialError):
            core.service.anchor_chain()
    assert alerts(core).count("anchor_down") == 1  # one alert per outage, not one per tick
    assert not core.service.anchor_up()
    verdict = verify_trail(core.store, anchor, core.clock.now())
    assert not verdict.intact and verdict.broken_seq == 1 and "no anchor in Vault vouches" in (verdict.why or "")
    assert verify_trail(core.store, anchor).intact  # without `now` (the demo's own check): the chain alone


def test_an_empty_trail_without_an_anchor_is_vouched_for_by_nothing() -> None:
    """What a database insider leaves after deleting every event and the head, when the anchor was never written."""
    core = bootstrap(make_catalog())
    anchor = UnwritableAnchor(core.clock)
    core.service.deps.anchor = anchor
    assert core.service.anchor_up()  # a process's first minute: nothing to vouch for yet
    core.clock.advance(timedelta(seconds=61))
    assert not core.service.anchor_up()
    verdict = verify_trail(core.store, anchor, core.clock.now())
    assert not verdict.intact and "holds no events" in (verdict.why or "")


def test_a_written_anchor_vouches_and_a_stale_one_does_not() -> None:
    core, anchor = anchored_core()
    history(core)
    core.service.anchor_chain()
    core.clock.advance(timedelta(seconds=300))
    assert core.service.anchor_up() and verify_trail(core.store, anchor, core.clock.now()).intact  # idle: still covered
    history(core)  # new events, and then the anchor can no longer be written
    core.clock.advance(timedelta(seconds=61))
    assert not core.service.anchor_up()
    assert not verify_trail(core.store, anchor, core.clock.now()).intact
    core.service.anchor_chain()  # written again: vouched again
    assert core.service.anchor_up() and verify_trail(core.store, anchor, core.clock.now()).intact


def test_auditor_check_is_audited(core):
    service, store = core.service, core.store
    service.require_auditor(AUDITOR, "export")
    with pytest.raises(NotAllowed):
        service.require_auditor(REQUESTER, "export")
    assert store.audit[-1].event == "rejected" and store.audit[-1].actor == REQUESTER


def test_an_export_is_written_through_the_guarded_trail_writer(core, monkeypatch):
    """`exported` goes through the one writer that checks an event concerns no request, not straight to the store."""
    from grants.usecases import deps

    through: list[str] = []
    guarded = deps.append_trail

    def spy(store, event):
        through.append(event.event)
        return guarded(store, event)

    monkeypatch.setattr(deps, "append_trail", spy)
    assert core.service.export(AUDITOR, AuditQuery(), io.StringIO(), "jsonl") == 0
    assert through == ["exported"] and core.store.names() == ["exported"]
