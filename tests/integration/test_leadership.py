"""Leader locks on PostgreSQL and SQLite, and the time keeper that runs timers only on the leader."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg

from grants.adapters.leader_lock import FileLeaderLock, PostgresLeaderLock
from grants.adapters.sql_store import make_engine
from grants.domain import State
from grants.timekeeper import TimeKeeper
from tests.catalogs import APPROVER_1, REQUESTER, make_catalog
from tests.databases import PG_ADMIN, fresh_database
from tests.fakes import FakeClock, FakeIssuer, FakeStore, FakeTimer, bootstrap


class FakeLock:
    def __init__(self, free: bool = True):
        self.free, self.held = free, False

    def acquire(self) -> bool:
        self.held = self.held or self.free
        return self.held

    def holding(self) -> bool:
        return self.held

    def release(self) -> None:
        self.held = False


class SwitchTimer(FakeTimer):
    active = True

    def activate(self) -> None:
        self.active = True

    def deactivate(self) -> None:
        self.active = False
        self.jobs.clear()

    def schedule(self, key, when) -> None:
        if self.active:
            super().schedule(key, when)


def replica(store: FakeStore, issuer: FakeIssuer, clock: FakeClock, free: bool):
    timer = SwitchTimer(clock)
    service = bootstrap(make_catalog(), clock=clock, store=store, issuer=issuer, timer=timer).service
    lock = FakeLock(free)
    return service, TimeKeeper(service, lock, timer, clock), timer, lock


def test_only_the_leader_runs_timers_and_a_new_leader_takes_over():
    clock, store, issuer = FakeClock(), FakeStore(), FakeIssuer()
    _, keeper_a, timer_a, lock_a = replica(store, issuer, clock, free=True)
    b, keeper_b, timer_b, lock_b = replica(store, issuer, clock, free=False)
    for keeper in (keeper_a, keeper_b):
        keeper.timer.deactivate()
        keeper.tick()
    assert keeper_a.leader and not keeper_b.leader
    # A follower handles the click: it issues, but arms nothing itself.
    request = b.request(REQUESTER, "payments-read", "10s", "INC-1")
    b.approve(request.id, APPROVER_1)
    assert timer_b.jobs == {}
    keeper_a.tick()
    assert request.id not in timer_a.jobs  # 10 s away: beyond the horizon
    clock.advance(timedelta(seconds=8))
    keeper_a.tick()
    assert request.id in timer_a.jobs  # due within the horizon: armed on the leader
    # The leader dies; the follower gets the lock and revokes what came due meanwhile.
    lock_a.held, lock_b.free = False, True
    timer_a.jobs.clear()
    clock.advance(timedelta(seconds=30))
    keeper_a.tick()
    assert not keeper_a.leader
    keeper_b.tick()
    timer_b.advance(timedelta(0))  # the new leader armed what came due meanwhile; it runs at once
    assert keeper_b.leader and store.get(request.id).state is State.EXPIRED and not issuer.live
    assert store.names().count("expired") == 1


def test_far_grants_are_armed_only_when_they_come_near():
    clock, store, issuer = FakeClock(), FakeStore(), FakeIssuer()
    service, keeper, timer, _ = replica(store, issuer, clock, free=True)
    request = service.request(REQUESTER, "payments-read", "30m", "INC-1")
    service.approve(request.id, APPROVER_1)
    keeper.timer.deactivate()
    keeper.tick()
    assert request.id not in timer.jobs
    clock.advance(timedelta(minutes=29, seconds=58))
    keeper.tick()
    assert request.id in timer.jobs


def test_postgres_advisory_lock_has_one_holder_and_dies_with_its_session(tmp_path):
    with fresh_database("postgresql", tmp_path) as url:
        engine_a, engine_b = make_engine(url), make_engine(url)
        a, b = PostgresLeaderLock(engine_a), PostgresLeaderLock(engine_b)
        try:
            assert a.acquire() and a.holding()
            assert not b.acquire()
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks JOIN pg_database d ON d.oid = database "
                    "WHERE locktype = 'advisory' AND d.datname = %s", (name,),
                )  # fmt: skip
            deadline = time.monotonic() + 3  # the heartbeat (every second) notices the session is gone
            while a.holding():
                assert time.monotonic() < deadline, "the holder never noticed its session ended"
                time.sleep(0.05)
            assert b.acquire() and b.holding()
            b.release()
            assert a.acquire()
        finally:
            a.release()
            b.release()
            engine_a.dispose()
            engine_b.dispose()


def test_file_lock_for_sqlite(tmp_path):
    a, b = FileLeaderLock(tmp_path / "db.leader"), FileLeaderLock(tmp_path / "db.leader")
    assert a.acquire() and not b.acquire()
    a.release()
    assert b.acquire()
    b.release()
