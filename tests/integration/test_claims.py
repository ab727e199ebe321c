"""Rows claimed with a lease, on SQLite and PostgreSQL: disjoint claims, renewal, takeover after a lapse, the loop."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from grants.claiming import ClaimLoop
from grants.outbox import Alert, Notice, alert
from tests.databases import fresh_store

T0 = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    with fresh_store(request.param, tmp_path, claim_lease=timedelta(seconds=10)) as store:
        yield store


def alerts(n: int) -> list[Notice]:
    return [alert(Alert.PLAIN, text=f"alert {i}") for i in range(n)]


def test_racing_workers_claim_disjoint_rows_and_each_row_once(store):
    store.enqueue(alerts(60), T0)
    claimed: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        mine = claimed.setdefault(name, [])
        while batch := store.claim(name, T0, 3):
            mine.extend(e.id for e in batch)

    threads = [threading.Thread(target=worker, args=(f"host-{i}-w",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for ids in claimed.values() for i in ids]
    assert sorted(every) == sorted(set(every)) and len(every) == 60  # each row once, none left behind


def test_a_lapsed_lease_is_taken_over_and_a_renewed_one_is_not(store):
    store.enqueue(alerts(2), T0)
    [first] = store.claim("dead-1-outbox-0", T0, 1)
    [second] = store.claim("live-2-outbox-0", T0, 1)
    assert store.claim("other-3-outbox-0", T0 + timedelta(seconds=5), 5) == []  # both leases hold
    # Only the live process's heartbeat runs; the dead one's lease lapses at T0 + 10 s.
    assert store.renew_claims("live-2-", T0 + timedelta(seconds=8)) == 1
    taken = store.claim("other-3-outbox-0", T0 + timedelta(seconds=11), 5)
    assert [e.id for e in taken] == [first.id]
    assert second.id not in [e.id for e in store.claim("other-3-outbox-0", T0 + timedelta(seconds=12), 5)]


def test_a_released_row_waits_for_its_not_before_time(store):
    store.enqueue(alerts(1), T0)
    [entry] = store.claim("w-1-outbox-0", T0, 1)
    store.retry_at(entry.id, T0 + timedelta(seconds=20))  # e.g. Slack's Retry-After
    assert store.claim("w-2-outbox-0", T0 + timedelta(seconds=19), 1) == []
    [again] = store.claim("w-2-outbox-0", T0 + timedelta(seconds=20), 1)
    assert again.id == entry.id and again.attempts == 1


def test_the_loop_renews_what_it_holds_while_the_work_runs():
    renewed: list[str] = []
    started, release = threading.Event(), threading.Event()

    def round_(worker: str) -> int:
        if started.is_set():
            return 0
        started.set()
        release.wait(5)  # a long piece of work
        return 1

    loop = ClaimLoop("test", round_, lambda prefix: renewed.append(prefix) or 1, threads=1, poll=0.05, heartbeat=0.05)
    loop.start()
    try:
        assert started.wait(5)
        deadline = time.monotonic() + 5
        while len(renewed) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(renewed) >= 3 and set(renewed) == {f"{loop.name}-"}
    finally:
        release.set()
        loop.stop()
