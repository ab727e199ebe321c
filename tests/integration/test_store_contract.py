"""One contract suite, run on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from grants.adapters.sql_store import HEAD, SqlStore
from grants.audit import AuditQuery, verify
from grants.credentials import CredentialHandle
from grants.domain import Approval, AuditEvent, Event, Grant, PendingExtension, Request, Review, State, decision_ref
from tests.databases import fresh_store
from tests.fakes import FakeStore

T0 = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "fake":
        yield FakeStore()
        return
    with fresh_store(request.param, tmp_path) as store:
        yield store


def make_request(rid: str = "JIT-AAAA0001", requester: str = "U0REQ0001") -> Request:
    return Request(
        id=rid,
        scope="payments-read",
        requester=requester,
        duration=timedelta(minutes=30),
        reason="INC-1 ünïcode",
        state=State.PENDING,
        created_at=T0,
        pending_until=T0 + timedelta(hours=1),
    )


def event(name: str, request: Request, actor: str = "system", **detail) -> AuditEvent:
    return AuditEvent(
        event=name, at=T0, actor=actor, request_id=request.id, scope=request.scope, subject=request.requester, detail=detail
    )


def test_round_trip_keeps_every_field_and_utc(store):
    request = make_request()
    store.commit(request, event("requested", request, reason=request.reason))
    active = request.advance(Event.APPROVED, approval=Approval(2, ("U1", "U2"), "U2", T0, 1, True, T0))
    assert store.commit(active, event("approved", active), expected_version=0)
    grant = Grant(CredentialHandle("database", "acc"), T0, T0 + timedelta(minutes=30), extensions=1, warned=True)
    active2 = active.advance(
        Event.ISSUED, grant=grant, review=Review("open", T0, None), extension=PendingExtension(timedelta(1), number=3)
    )
    assert store.commit(active2, event("issued", active2, accessor="acc"), expected_version=1)
    loaded = store.get(request.id)
    assert loaded == active2
    assert loaded.expires_at.tzinfo is not None and loaded.expires_at.utcoffset() == timedelta(0)


def test_compare_and_swap_refuses_a_stale_version(store):
    request = make_request()
    store.commit(request, event("requested", request))
    assert store.commit(request.advance(Event.APPROVED), event("approved", request), expected_version=0)
    assert not store.commit(request.advance(Event.DENIED), event("denied", request), expected_version=0)
    assert store.get(request.id).state is State.APPROVED
    assert [e.event for e in store.events(AuditQuery())] == ["requested", "approved"]


def test_racing_writers_one_wins_and_chain_stays_intact(store):
    request = make_request()
    store.commit(request, event("requested", request))
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        results.append(
            store.commit(
                request.advance(Event.APPROVED, approval=Approval(decided_by=f"U{i}")),
                event("approved", request, f"U{i}"),
                expected_version=0,
            )
        )

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    for i in range(20):
        store.record(AuditEvent(event="rejected", at=T0, actor=f"U{i}"))
    events = list(store.events(AuditQuery()))
    assert [e.seq for e in events] == list(range(1, 23))
    assert verify(events).intact


def test_find_filters(store):
    a, b = make_request("JIT-A"), replace(make_request("JIT-B", "U0OTHER01"), created_at=T0 + timedelta(seconds=1))
    store.commit(a, event("requested", a))
    store.commit(b, event("requested", b))
    assert [r.id for r in store.find()] == ["JIT-B", "JIT-A"]
    assert [r.id for r in store.find(requester="U0OTHER01")] == ["JIT-B"]
    assert store.find(states=(State.ACTIVE,)) == []
    assert len(store.find(limit=1)) == 1
    assert store.get("JIT-NONE") is None


def test_event_filters(store):
    a = make_request()
    store.commit(a, event("requested", a))
    store.record(AuditEvent(event="exported", at=T0 + timedelta(days=1), actor="U0AUDIT01"))
    assert [e.event for e in store.events(AuditQuery(since=T0 + timedelta(hours=1)))] == ["exported"]
    assert [e.event for e in store.events(AuditQuery(until=T0 + timedelta(hours=1)))] == ["requested"]
    assert [e.event for e in store.events(AuditQuery(user="U0REQ0001"))] == ["requested"]
    assert [e.event for e in store.events(AuditQuery(scope="payments-read"))] == ["requested"]


def test_message_refs(store):
    store.add_message_ref("JIT-A", "C1", "1.000")
    store.add_message_ref("JIT-A", "D2", "2.000", step=1)
    assert sorted(store.message_refs("JIT-A")) == [("C1", "1.000", None), ("D2", "2.000", 1)]
    assert store.message_refs("JIT-B") == []


@pytest.mark.parametrize("page", [1, 2, 5000])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_fast_paths_match_the_generic_writer(store, fmt, page, monkeypatch):
    """SQLite builds the CSV in pages of `page` seq values read by two connections: however the pages fall (empty
    ones included, under a filter), the bytes are the generic writer's, in order."""
    import io

    from grants.adapters import sqlite_csv

    monkeypatch.setattr(sqlite_csv, "PAGE", page)

    from grants.audit import write_export
    from grants.usecases.auditing import export as export_trail
    from tests.fakes import FakeClock

    a = make_request()
    store.commit(a, event("requested", a, reason='quotes " and, commas', n=[1, 2]))
    store.record(AuditEvent(event="exported", at=T0 + timedelta(days=1), actor="U0AUDIT01"))
    store.record(AuditEvent(event="rejected", at=T0 + timedelta(days=2), actor="U0REQ0001", detail={"rule": "x"}))
    for i in range(7):
        store.record(AuditEvent(event="rejected", at=T0 + timedelta(days=2, seconds=i), actor=f"U0OTHER{i}", detail={"n": i}))
    for query in (
        AuditQuery(),
        AuditQuery(since=T0 + timedelta(hours=1)),
        AuditQuery(user="U0REQ0001"),
        AuditQuery(scope="payments-read"),
    ):
        expected = io.StringIO()
        write_export(iter(list(store.events(query))), expected, fmt)
        got = io.StringIO()
        count = export_trail(store, FakeClock(T0 + timedelta(days=3)), "system", query, got, fmt)
        assert got.getvalue() == expected.getvalue() and count == len(expected.getvalue().splitlines()) - (fmt == "csv")


def test_appends_go_on_after_the_chain_head_row_was_deleted(store):
    """Deleting audit_head by hand must not make every later append fail (it used to: UNIQUE on seq)."""
    a = make_request()
    store.commit(a, event("requested", a))
    store.record(AuditEvent(event="exported", at=T0, actor="U0AUDIT01"))
    if isinstance(store, SqlStore):
        with store.engine.begin() as connection:
            connection.execute(HEAD.delete())
    store.record(AuditEvent(event="exported", at=T0, actor="U0AUDIT01"))
    events = list(store.events(AuditQuery()))
    assert [e.seq for e in events] == [1, 2, 3] and verify(events).intact
    assert store.chain_head() == (3, events[-1].hash)


def test_an_extension_asked_before_asks_were_numbered_keeps_the_reference_its_buttons_show(store):
    """Rows waiting on an extension when migration 0008 ran have no number: their buttons said `e<extensions + 1>`."""
    request = make_request()
    store.commit(request, event("requested", request))
    grant = Grant(CredentialHandle("vault_token", "acc"), T0, T0 + timedelta(minutes=30), extensions=1)
    legacy = request.advance(Event.APPROVED).advance(Event.ISSUED, grant=grant, extension=PendingExtension(timedelta(1)))
    assert store.commit(legacy, event("issued", legacy), expected_version=0)
    assert store.get(request.id).extension == PendingExtension(timedelta(1), number=None)
    assert decision_ref(store.get(request.id)) == f"{request.id}:e2"
