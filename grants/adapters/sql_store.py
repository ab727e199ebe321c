"""The SQLModel store: requests with compare-and-swap writes and the hash-chained audit trail."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, or_, text, update
from sqlmodel import Session, col, select

from grants.adapters.sql_tables import AuditHeadRow, AuditRow, MessageRefRow, RequestRow
from grants.audit import GENESIS_HASH, AuditQuery, chained
from grants.domain import AuditEvent, Request, State


def make_engine(url: str) -> Engine:
    """An engine that survives dropped connections and serializes SQLite writers safely."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front, so a read-then-write never deadlocks.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_row(request: Request) -> dict[str, Any]:
    return {
        "id": request.id,
        "scope": request.scope,
        "requester": request.requester,
        "duration_seconds": int(request.duration.total_seconds()),
        "reason": request.reason,
        "state": request.state.value,
        "created_at": request.created_at,
        "pending_until": request.pending_until,
        "approvals": list(request.approvals),
        "approvals_required": request.approvals_required,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "issued_at": request.issued_at,
        "expires_at": request.expires_at,
        "ended_at": request.ended_at,
        "accessor": request.accessor,
        "revoke_attempts": request.revoke_attempts,
        "break_glass": request.break_glass,
        "extensions": request.extensions,
        "extension_pending_seconds": int(request.extension_pending.total_seconds()) if request.extension_pending else None,
        "reminders_sent": request.reminders_sent,
        "escalated": request.escalated,
        "nudged_at": request.nudged_at,
        "warned": request.warned,
        "review_state": request.review_state,
        "review_due_at": request.review_due_at,
        "reviewed_by": request.reviewed_by,
        "wake_at": request.wake_at,
        "version": request.version,
    }


def _from_row(row: RequestRow) -> Request:
    return Request(
        id=row.id,
        scope=row.scope,
        requester=row.requester,
        duration=timedelta(seconds=row.duration_seconds),
        reason=row.reason,
        state=State(row.state),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        pending_until=as_utc(row.pending_until),  # type: ignore[arg-type]
        approvals=tuple(row.approvals),
        approvals_required=row.approvals_required,
        decided_by=row.decided_by,
        decided_at=as_utc(row.decided_at),
        issued_at=as_utc(row.issued_at),
        expires_at=as_utc(row.expires_at),
        ended_at=as_utc(row.ended_at),
        accessor=row.accessor,
        revoke_attempts=row.revoke_attempts,
        break_glass=row.break_glass,
        extensions=row.extensions,
        extension_pending=timedelta(seconds=row.extension_pending_seconds) if row.extension_pending_seconds else None,
        reminders_sent=row.reminders_sent,
        escalated=row.escalated,
        nudged_at=as_utc(row.nudged_at),
        warned=row.warned,
        review_state=row.review_state,
        review_due_at=as_utc(row.review_due_at),
        reviewed_by=row.reviewed_by,
        wake_at=as_utc(row.wake_at),
        version=row.version,
    )


def _event_from(seq: int, at: datetime, name: str, request_id: str | None, scope: str | None, actor: str,
                subject: str | None, detail: str, prev_hash: str, hash_: str) -> AuditEvent:  # fmt: skip
    return AuditEvent(
        event=name, at=as_utc(at), actor=actor, request_id=request_id, scope=scope, subject=subject,  # type: ignore[arg-type]
        detail=json.loads(detail), seq=seq, prev_hash=prev_hash, hash=hash_,
    )  # fmt: skip


class SqlStore:
    """Implements the Store port (and the notifier's message references) on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # requests -----------------------------------------------------------------------------------

    def create(self, request: Request, event: AuditEvent) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(RequestRow(**_to_row(request)))
            session.flush()
            self._append(session, event)

    def save(self, request: Request, expected_version: int, event: AuditEvent | None) -> bool:
        with Session(self.engine) as session, session.begin():
            values = _to_row(request)
            del values["id"]
            result = session.execute(
                update(RequestRow)
                .where(col(RequestRow.id) == request.id, col(RequestRow.version) == expected_version)
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                session.rollback()
                return False
            if event is not None:
                self._append(session, event)
            return True

    def get(self, request_id: str) -> Request | None:
        with Session(self.engine) as session:
            row = session.get(RequestRow, request_id)
            return _from_row(row) if row else None

    def find(
        self, *, states: Collection[State] | None = None, requester: str | None = None, limit: int | None = None
    ) -> list[Request]:
        query = select(RequestRow).order_by(col(RequestRow.created_at).desc())
        if states is not None:
            query = query.where(col(RequestRow.state).in_([s.value for s in states]))
        if requester is not None:
            query = query.where(RequestRow.requester == requester)
        if limit is not None:
            query = query.limit(limit)
        with Session(self.engine) as session:
            return [_from_row(row) for row in session.exec(query)]

    def due(self, horizon: datetime) -> list[Request]:
        query = select(RequestRow).where(col(RequestRow.wake_at) <= horizon).order_by(col(RequestRow.wake_at))
        with Session(self.engine) as session:
            return [_from_row(row) for row in session.exec(query)]

    def open_reviews(self) -> list[Request]:
        query = select(RequestRow).where(RequestRow.review_state == "open").order_by(col(RequestRow.created_at))
        with Session(self.engine) as session:
            return [_from_row(row) for row in session.exec(query)]

    def count(self, state: State) -> int:
        with Session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(RequestRow).where(RequestRow.state == state.value)).one())

    # audit ----------------------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> AuditEvent:
        with Session(self.engine) as session, session.begin():
            return self._append(session, event)

    def _append(self, session: Session, event: AuditEvent) -> AuditEvent:
        head = session.exec(select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()).first()
        if head is None:
            head = AuditHeadRow(id=1, seq=0, hash=GENESIS_HASH)
            session.add(head)
        linked = chained(event, head.seq + 1, head.hash)
        assert linked.hash is not None and linked.seq is not None and linked.prev_hash is not None
        session.add(
            AuditRow(
                seq=linked.seq,
                at=linked.at,
                event=linked.event,
                request_id=linked.request_id,
                scope=linked.scope,
                actor=linked.actor,
                subject=linked.subject,
                detail=json.dumps(linked.detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                prev_hash=linked.prev_hash,
                hash=linked.hash,
            )
        )
        head.seq, head.hash = linked.seq, linked.hash
        session.add(head)
        session.flush()
        return linked

    def events(self, query: AuditQuery) -> Iterator[AuditEvent]:
        table = AuditRow.__table__  # type: ignore[attr-defined]
        statement = select(*table.c).order_by(table.c.seq)
        if query.since is not None:
            statement = statement.where(table.c.at >= query.since)
        if query.until is not None:
            statement = statement.where(table.c.at < query.until)
        if query.scope is not None:
            statement = statement.where(table.c.scope == query.scope)
        if query.user is not None:
            statement = statement.where(or_(table.c.actor == query.user, table.c.subject == query.user))
        with self.engine.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=2000).execute(statement)
            for row in result:
                yield _event_from(*row)

    # message references (used by the Slack notifier) -----------------------------------------------

    def add_message_ref(self, request_id: str, channel: str, ts: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(MessageRefRow(request_id=request_id, channel=channel, ts=ts))

    def message_refs(self, request_id: str) -> list[tuple[str, str]]:
        with Session(self.engine) as session:
            rows = session.exec(select(MessageRefRow).where(MessageRefRow.request_id == request_id))
            return [(row.channel, row.ts) for row in rows]

    def healthy(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False
