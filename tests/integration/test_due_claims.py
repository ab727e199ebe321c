"""Due requests claimed with a lease on their row, on SQLite and PostgreSQL: every worker runs what is due, each
request once; a lapsed lease is taken over; the timer is armed for the next deadline the database holds."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest

from grants.adapters.due_store import SqlDue
from grants.adapters.sql_store import SqlStore
from grants.audit import AuditQuery
from grants.domain import State
from grants.timekeeper import DueWork
from tests.catalogs import APPROVER_1, REQUESTER, make_catalog
from tests.databases import fresh_store
from tests.fakes import FakeClock, FakeIssuer, FakeTimer, bootstrap


class CountingIssuer(FakeIssuer):
    def __init__(self) -> None:
        super().__init__()
        self.revoked: Counter[str] = Counter()
        self._lock = threading.Lock()

    def revoke(self, handle, request_id, proven=False):  # type: ignore[no-untyped-def]
        with self._lock:
            self.revoked[request_id] += 1
        time.sleep(0.002)  # a Vault round trip: rounds overlap
        super().revoke(handle, request_id, proven)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    with fresh_store(request.param, tmp_path, claim_lease=timedelta(seconds=10)) as store:
        yield store


def grants(store: SqlStore, n: int):  # type: ignore[no-untyped-def]
    clock, issuer = FakeClock(), CountingIssuer()
    core = bootstrap(make_catalog(), clock=clock, store=store, issuer=issuer)  # type: ignore[arg-type]
    ids = []
    for i in range(n):
        request = core.service.request(f"{REQUESTER}{i}" if i else REQUESTER, "payments-read", "1m", f"INC-{i}")
        ids.append(core.service.approve(request.id, APPROVER_1).id)
    return core, issuer, ids


def test_two_workers_end_a_burst_each_grant_once(store):
    core, issuer, ids = grants(store, 60)
    core.clock.advance(timedelta(minutes=2))  # all 60 due at once
    loops = [DueWork(SqlDue(store), core.service.wake, FakeTimer(core.clock), core.clock, poll=0.05) for _ in range(2)]
    for loop in loops:
        loop.start()
    try:
        deadline = time.monotonic() + 60
        while store.count(State.EXPIRED) < len(ids):
            assert time.monotonic() < deadline, store.count(State.EXPIRED)
            time.sleep(0.05)
        time.sleep(0.3)  # a second run of any of them would show by now
    finally:
        for loop in loops:
            loop.stop()
    expired = Counter(e.request_id for e in store.events(AuditQuery()) if e.event == "expired")
    assert expired == dict.fromkeys(ids, 1) and issuer.revoked == dict.fromkeys(ids, 1) and not issuer.live
    assert all(store.get(i).wake_at is None for i in ids)


def test_a_lapsed_lease_is_taken_over_a_renewed_one_is_not_and_a_failure_waits(store):
    core, _, ids = grants(store, 3)
    now = core.clock.now() + timedelta(minutes=2)
    due = SqlDue(store)
    assert due.claim("dead-1-due-0", now, 1) == [ids[0]]  # soonest first: the first one granted
    assert due.claim("live-2-due-0", now, 1) == [ids[1]]
    assert due.claim("other-3-due-0", now + timedelta(seconds=5), 5) == [ids[2]]  # the held two are skipped
    due.let_go("other-3-due-0", [ids[2]], not_before=now + timedelta(seconds=30))  # it failed: not before 30 s
    assert due.renew("live-2-", now + timedelta(seconds=8)) == 1  # only the live process's heartbeat runs
    assert due.claim("other-3-due-0", now + timedelta(seconds=11), 5) == [ids[0]]  # the dead one's lapsed at 10 s
    due.let_go("live-2-due-0", [ids[1]])  # done: free at once
    assert due.claim("other-3-due-0", now + timedelta(seconds=12), 5) == [ids[1]]
    assert due.claim("other-3-due-0", now + timedelta(seconds=29), 5) == [ids[0], ids[1]]  # leases of 10 s lapsed
    assert due.claim("other-3-due-0", now + timedelta(seconds=31), 5) == [ids[2]]  # the failed one, from 30 s on


def test_an_idle_round_arms_the_timer_for_the_next_deadline_in_the_database(store):
    core, _, ids = grants(store, 2)
    timer = FakeTimer(core.clock)
    loop = DueWork(SqlDue(store), core.service.wake, timer, core.clock)
    assert loop.round(f"{loop.name}-due-0") == 0  # nothing due yet
    assert timer.jobs == {"due": store.get(ids[0]).wake_at}  # the soonest of the two, written by whoever
