"""The hash-chained audit trail on SQL: appends under the chain head's row lock, the reads and the export's rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, or_, select
from sqlalchemy.exc import IntegrityError

from grants.adapters.sql_db import SqlDatabase, as_utc
from grants.adapters.sql_tables import AuditHeadRow, AuditRow
from grants.adapters.sqlite_csv import csv_pages
from grants.audit import GENESIS_HASH, AuditQuery, at_text, chained, detail_text
from grants.domain import AuditEvent
from grants.lifecycle import Event

AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
HEAD = AuditHeadRow.__table__  # type: ignore[attr-defined]


def _event_from(
    seq: int,
    at: datetime,
    name: str,
    request_id: str | None,
    scope: str | None,
    actor: str,
    subject: str | None,
    detail: str,
    prev_hash: str,
    hash_: str,
) -> AuditEvent:
    return AuditEvent(
        event=Event(name),
        at=as_utc(at),  # type: ignore[arg-type]
        actor=actor,
        request_id=request_id,
        scope=scope,
        subject=subject,
        detail=json.loads(detail),
        seq=seq,
        prev_hash=prev_hash,
        hash=hash_,
    )


def audit_filters(query: AuditQuery) -> list[ColumnElement[bool]]:
    """The export's filters, one list for every way the trail is read (rows, and SQLite's own CSV pages)."""
    filters: list[ColumnElement[bool]] = []
    if query.since is not None:
        filters.append(AUDIT.c.at >= query.since)
    if query.until is not None:
        filters.append(AUDIT.c.at < query.until)
    if query.scope is not None:
        filters.append(AUDIT.c.scope == query.scope)
    if query.user is not None:
        filters.append(or_(AUDIT.c.actor == query.user, AUDIT.c.subject == query.user))
    if query.from_seq is not None:
        filters.append(AUDIT.c.seq >= query.from_seq)
    return filters


class SqlTrail(SqlDatabase):
    """The audit table and its chain head: appended only inside the store's unit of work (`_append`)."""

    def _append(self, connection: Any, event: AuditEvent) -> AuditEvent:
        # Locking the one head row serializes appends across threads and replicas: the chain never forks.
        head = connection.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()).first()
        if head is None:
            head = self._restore_head(connection)
        seq, prev = head
        linked = chained(event, seq + 1, prev)
        connection.execute(
            AUDIT.insert().values(
                seq=linked.seq,
                at=linked.at,
                event=linked.event,
                request_id=linked.request_id,
                scope=linked.scope,
                actor=linked.actor,
                subject=linked.subject,
                prev_hash=linked.prev_hash,
                hash=linked.hash,
                detail=detail_text(linked.detail),
            )
        )
        connection.execute(HEAD.update().where(HEAD.c.id == 1).values(seq=linked.seq, hash=linked.hash))
        return linked

    @staticmethod
    def _restore_head(connection: Any) -> Any:
        """The head row is gone (deleted by hand, say): rebuild it from the newest event rather than restart the
        chain at seq 1 (every later append would then fail on the taken seq). `verify` still reports the deletion
        if events went with it: the anchor outside the database remembers the chain."""
        last = connection.execute(select(AUDIT.c.seq, AUDIT.c.hash).order_by(AUDIT.c.seq.desc()).limit(1)).first()
        seq, hash_ = (int(last[0]), str(last[1])) if last else (0, GENESIS_HASH)
        try:
            with connection.begin_nested():
                connection.execute(HEAD.insert().values(id=1, seq=seq, hash=hash_))
        except IntegrityError:
            pass  # another writer restored it a moment ago: take theirs, under the lock
        return connection.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()).first()

    def events(self, query: AuditQuery) -> Iterator[AuditEvent]:
        for row in self.event_rows(query):
            seq, at, *rest = row
            yield _event_from(seq, at if isinstance(at, datetime) else datetime.fromisoformat(at_text(at)), *rest)

    def event_rows(self, query: AuditQuery) -> Iterator[Any]:
        """Raw rows in `seq` order, streamed: seq, at, event, request_id, scope, actor, subject, detail (JSON text), hashes."""
        # SQLite keeps `at` as UTC text: reading it as text skips parsing a million datetimes.
        at = cast(AUDIT.c.at, String) if self.engine.dialect.name == "sqlite" else AUDIT.c.at
        columns = [at if c.name == "at" else c for c in AUDIT.c]
        statement = select(*columns).where(*audit_filters(query)).order_by(AUDIT.c.seq)
        with self.reader.connect() as connection:
            yield from connection.execution_options(stream_results=True, yield_per=5000).execute(statement)

    def csv_lines(self, query: AuditQuery) -> Iterator[tuple[str, int]] | None:
        """SQLite only: the export's CSV lines built by SQLite itself, the same bytes as the generic writer."""
        if self.engine.dialect.name != "sqlite":
            return None
        return csv_pages(self.reader, AUDIT, audit_filters(query))

    def audited_credential(self, request_id: str) -> str | None:
        query = (
            select(AUDIT.c.detail)
            .where(
                AUDIT.c.request_id == request_id,
                AUDIT.c.event.in_([Event.ISSUED.value, Event.EXTENDED.value, Event.REISSUED.value]),
            )
            .order_by(AUDIT.c.seq.desc())
            .limit(1)
        )
        with self.reader.connect() as connection:
            detail = connection.execute(query).scalar()
        accessor = json.loads(detail).get("accessor") if detail else None
        return str(accessor) if accessor else None

    def last_detail(self, request_id: str, event: Event) -> tuple[str, dict[str, Any]] | None:
        query = (
            select(AUDIT.c.actor, AUDIT.c.detail)
            .where(AUDIT.c.request_id == request_id, AUDIT.c.event == event.value)
            .order_by(AUDIT.c.seq.desc())
            .limit(1)
        )
        with self.reader.connect() as connection:
            row = connection.execute(query).first()
        return (str(row.actor), json.loads(row.detail) if row.detail else {}) if row is not None else None

    def chain_head(self) -> tuple[int, str]:
        """The last seq and hash the chain head records (0 and the genesis hash when empty)."""
        with self.reader.connect() as connection:
            head = connection.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1)).first()
        return (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
