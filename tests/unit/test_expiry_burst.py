"""A burst of expiries (`wake_many`): revoked before recorded, batched records, each a CAS with its event and notices."""

from __future__ import annotations

from datetime import timedelta

from grants.audit import AuditQuery, verify
from grants.credentials import CredentialError
from grants.domain import State
from grants.lifecycle import Event
from grants.usecases import expiring
from tests.catalogs import APPROVER_1, REQUESTER, make_catalog
from tests.fakes import Core, FakeIssuer, FakeStore, bootstrap


class CountingStore(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.before_batch = lambda: None

    def save_many(self, changes):  # type: ignore[no-untyped-def]
        self.before_batch()
        self.batches.append(len(changes))
        return super().save_many(changes)


class CheckingIssuer(FakeIssuer):
    """Revocation must come first: when Vault is asked, the store still shows the grant active, with no `expired` event."""

    def __init__(self, store: FakeStore, refuse: set[str]) -> None:
        super().__init__()
        self.store, self.refuse, self.revoked = store, refuse, []

    def revoke(self, handle, request_id):  # type: ignore[no-untyped-def]
        if self.store.requests.get(request_id) and self.store.requests[request_id].state is State.ACTIVE:
            assert not [e for e in self.store.audit if e.request_id == request_id and e.event == "expired"]
        if request_id in self.refuse:
            raise CredentialError("vault unreachable")
        self.revoked.append(request_id)
        super().revoke(handle, request_id)


def _burst(n: int, refuse: int | None = None) -> tuple[Core, CountingStore, CheckingIssuer, list[str]]:
    store = CountingStore()
    issuer = CheckingIssuer(store, set())
    core = bootstrap(make_catalog(), store=store, issuer=issuer)
    ids = []
    for i in range(n):
        request = core.service.request(f"{REQUESTER}{i}" if i else REQUESTER, "payments-read", "10m", f"INC-{i}")
        core.service.approve(request.id, APPROVER_1)
        ids.append(request.id)
    if refuse is not None:
        issuer.refuse.add(ids[refuse])
    core.timer.jobs.clear()  # the burst is handed over by the test, as the timer's drainer would
    core.clock.advance(timedelta(minutes=10))
    return core, store, issuer, ids


def test_a_burst_is_revoked_then_recorded_in_batches(monkeypatch):
    monkeypatch.setattr(expiring, "BATCH", 2)
    core, store, issuer, ids = _burst(3)
    expiring.wake_many(core.service.deps, ids + ids[:1], run=map)  # a duplicate key is harmless
    assert all(store.get(i).state is State.EXPIRED for i in ids) and not issuer.live
    assert store.batches == [2, 1]  # two transactions for three grants
    expired = [e for e in store.audit if e.event == "expired"]
    assert sorted(e.request_id for e in expired) == sorted(ids)
    assert all(e.detail["lag_seconds"] >= 0 and e.detail["accessor"] for e in expired)
    assert verify(store.events(AuditQuery())).intact
    assert all(("told", (i, "expired")) in core.notifier.sent for i in ids)  # notices committed, then delivered
    expiring.wake_many(core.service.deps, ids, run=map)  # woken again: nothing more happens
    assert len([e for e in store.audit if e.event == "expired"]) == 3 and sorted(issuer.revoked) == sorted(ids)


def test_a_failed_revoke_stays_active_and_the_rest_are_recorded():
    core, store, issuer, ids = _burst(3, refuse=1)
    expiring.wake_many(core.service.deps, ids, run=expiring.bounded_map)
    assert store.get(ids[1]).state is State.ACTIVE and store.get(ids[1]).grant.revoke_attempts == 1
    assert [store.get(i).state for i in (ids[0], ids[2])] == [State.EXPIRED, State.EXPIRED]
    assert [e.event for e in store.audit if e.request_id == ids[1]][-1] == "revoke_failed"
    assert "alert" in core.notifier.kinds()
    issuer.refuse.clear()
    core.timer.advance(timedelta(seconds=5))  # its retry is a wake-up after the backoff
    assert store.get(ids[1]).state is State.EXPIRED and not issuer.live


def test_a_grant_changed_meanwhile_is_ended_as_it_is_now():
    core, store, issuer, ids = _burst(2)
    victim = store.get(ids[0])

    def extend_first() -> None:  # another replica writes the row between our read and our batch
        store.before_batch = lambda: None
        bumped = victim.advance(Event.EXPIRY_WARNED, grant=victim.with_grant(warned=True))
        assert store.save(bumped, victim.version, None)

    store.before_batch = extend_first
    expiring.wake_many(core.service.deps, ids, run=map)
    assert [store.get(i).state for i in ids] == [State.EXPIRED, State.EXPIRED]
    assert [e.request_id for e in store.audit if e.event == "expired"].count(ids[0]) == 1
    assert store.batches == [2]


def test_other_wake_ups_in_the_batch_run_as_single_timers():
    core, store, issuer, ids = _burst(1)
    pending = core.service.request(f"{REQUESTER}9", "payments-read", "10m", "INC-9")
    core.clock.advance(timedelta(days=1))  # long past its approval window
    expiring.wake_many(core.service.deps, [pending.id, ids[0], "JIT-NOSUCH01"], run=map)
    assert store.get(pending.id).state is State.TIMED_OUT and store.get(ids[0]).state is State.EXPIRED
