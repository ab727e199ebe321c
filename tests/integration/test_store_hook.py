"""The store's on_committed hook, on SQLite and PostgreSQL: called after each commit with the chained event, never
for a write that did not commit; and /metrics' audit counters come from it (no proxy of the store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from bot.metrics import Metrics
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine
from grants.domain import AlreadyOpen, AuditEvent, Event, Request, State
from grants.outbox import ALERT, Notice
from tests.databases import fresh_database

T0 = datetime(2026, 12, 8, 4, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        sql = SqlStore(engine)
        yield sql
        sql.close()


def pending(rid: str) -> Request:
    return Request(
        id=rid, scope="payments-read", requester="U0REQ0001", duration=timedelta(minutes=30), reason="INC-1",
        state=State.PENDING, created_at=T0, pending_until=T0 + timedelta(hours=1),
    )  # fmt: skip


def event(name: Event, request: Request, **detail: object) -> AuditEvent:
    return AuditEvent(event=name, at=T0, actor="U0APPR001", request_id=request.id, scope=request.scope, detail=detail)


def test_the_hook_sees_each_committed_event_chained_and_nothing_that_did_not_commit(store: SqlStore) -> None:
    seen: list[AuditEvent] = []
    store.watch(seen.append)
    request = pending("JIT-HOOK0001")
    store.commit(request, event(Event.REQUESTED, request), [Notice(ALERT, request.id, {"text": "x"})])
    with pytest.raises(AlreadyOpen):  # the twin's insert rolls back: no event for it
        store.commit(pending("JIT-HOOK0002"), event(Event.REQUESTED, pending("JIT-HOOK0002")))
    approved = request.advance(Event.APPROVED)
    assert store.commit(approved, event(Event.APPROVED, approved), expected_version=0)
    assert not store.commit(request.advance(Event.DENIED), event(Event.DENIED, request), expected_version=0)  # lost the race
    store.record(AuditEvent(event=Event.EXPORTED, at=T0, actor="U0AUDIT01", detail={"count": 0}))
    assert [(e.event, e.seq) for e in seen] == [(Event.REQUESTED, 1), (Event.APPROVED, 2), (Event.EXPORTED, 3)]
    assert store.chain_head() == (3, seen[-1].hash)


def test_a_failing_hook_does_not_undo_or_fail_the_write(store: SqlStore) -> None:
    def broken(_: AuditEvent) -> None:
        raise RuntimeError("metrics down")

    seen: list[Event] = []
    store.watch(broken)
    store.watch(lambda e: seen.append(e.event))
    request = pending("JIT-HOOK0003")
    store.commit(request, event(Event.REQUESTED, request))
    assert store.get(request.id) is not None and seen == [Event.REQUESTED]  # the next watcher still ran


def test_metrics_count_what_the_store_commits(store: SqlStore) -> None:
    metrics = Metrics()
    store.watch(metrics.on_committed)
    metrics.active.set_function(lambda: store.count(State.ACTIVE))
    request = pending("JIT-HOOK0004")
    store.commit(request, event(Event.REQUESTED, request))
    approved = request.advance(Event.APPROVED)
    assert store.commit(approved, event(Event.APPROVED, approved), expected_version=0)
    assert not store.commit(
        approved, event(Event.APPROVED, approved), expected_version=0
    )  # a second click that lost: counted once
    text = generate_latest(metrics.registry).decode()
    assert 'jitbot_audit_events_total{event="requested"} 1.0' in text
    assert 'jitbot_decisions_total{decision="approved"} 1.0' in text
    assert 'jitbot_audit_events_total{event="approved"} 1.0' in text
    assert "jitbot_active_grants 0.0" in text
