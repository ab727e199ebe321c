"""`jitbot db upgrade` on a database holding the duplicate open requests the old check-then-act bug made."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import REQUESTS, SqlStore, _to_row, make_engine
from grants.audit import AuditQuery
from grants.credentials import CredentialHandle
from grants.domain import AuditEvent, Grant, Request, State
from grants.usecases.auditing import verify_trail
from tests.databases import fresh_database

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def request(rid: str, state: State, minutes: int, requester: str = "U0REQ0001", scope: str = "payments-read") -> Request:
    made = Request(id=rid, scope=scope, requester=requester, duration=timedelta(minutes=30), reason="INC-1",
                   state=state, created_at=T0 + timedelta(minutes=minutes), pending_until=T0 + timedelta(hours=1))  # fmt: skip
    if state is State.ACTIVE:
        handle = CredentialHandle("vault_token", f"acc-{rid}")
        made = replace(made, grant=Grant(handle=handle, issued_at=made.created_at, expires_at=made.created_at + made.duration))
    return made


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_duplicates_are_ended_and_audited_then_the_index_is_built(database: str, tmp_path) -> None:
    with fresh_database(database, tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine, "0005")  # the schema before the index, holding what the old bug let through
        store = SqlStore(engine)
        store.record(AuditEvent(event="exported", at=T0, actor="system", detail={"count": 0}))
        rows = [
            request("JIT-PEND0001", State.PENDING, 1),  # five pending twins: the oldest is kept
            *[request(f"JIT-PEND000{n}", State.PENDING, n) for n in range(2, 6)],
            request("JIT-GLASS001", State.ACTIVE, 3, scope="payments-write"),  # break-glass twins: active beats approved
            request("JIT-GLASS002", State.ACTIVE, 2, scope="payments-write"),
            request("JIT-GLASS003", State.APPROVED, 1, scope="payments-write"),
            request("JIT-OTHER001", State.PENDING, 1, requester="U0OTHER01"),  # no twin: untouched
            request("JIT-ENDED001", State.EXPIRED, 0),  # ended: not open, untouched
        ]
        at_0005 = {column["name"] for column in inspect(engine).get_columns("requests")}  # later columns do not exist yet
        with engine.begin() as connection:
            connection.execute(REQUESTS.insert(), [{k: v for k, v in _to_row(r).items() if k in at_0005} for r in rows])
        upgrade(engine)
        assert "uq_requests_one_open" in {ix["name"] for ix in inspect(engine).get_indexes("requests")}
        states = {r.id: r.state for r in store.find()}
        assert states == {
            "JIT-PEND0001": State.PENDING, **{f"JIT-PEND000{n}": State.CANCELLED for n in range(2, 6)},
            "JIT-GLASS002": State.ACTIVE, "JIT-GLASS001": State.REVOKED, "JIT-GLASS003": State.FAILED,
            "JIT-OTHER001": State.PENDING, "JIT-ENDED001": State.EXPIRED,
        }  # fmt: skip
        events = {e.request_id: e for e in store.events(AuditQuery()) if e.request_id}
        assert {rid: e.event for rid, e in events.items()} == {
            **{f"JIT-PEND000{n}": "cancelled" for n in range(2, 6)}, "JIT-GLASS001": "revoked", "JIT-GLASS003": "issue_failed",
        }  # fmt: skip
        revoked = events["JIT-GLASS001"]
        assert revoked.actor == "system" and revoked.detail["kept"] == "JIT-GLASS002"
        assert revoked.detail["revoked_in_vault"] is False and revoked.detail["accessor"] == "vault_token:acc-JIT-GLASS001"
        verdict = verify_trail(store)
        assert verdict.intact and verdict.count == 1 + 6, verdict  # the export, then six endings
        assert store.get("JIT-PEND0003").version == 1 and store.get("JIT-PEND0003").wake_at is None
        with engine.connect() as connection:  # the index holds from now on
            assert connection.execute(text("SELECT count(*) FROM requests WHERE state = 'pending'")).scalar() == 2
        store.record(AuditEvent(event="exported", at=T0, actor="system", detail={"count": 1}))  # appends continue the chain
        assert verify_trail(store).intact
        engine.dispose()
