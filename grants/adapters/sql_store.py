"""The SQL store: its parts on one database, and the unit of work that writes a change, its event and its notices."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from grants.adapters.claims import Claims
from grants.adapters.sql_db import SqlDatabase, as_utc, make_engine, unreachable
from grants.adapters.sql_keys import SqlKeys
from grants.adapters.sql_outbox import OUTBOX, SqlOutbox
from grants.adapters.sql_requests import REQUESTS, SqlRequests, _from_row, _to_row
from grants.adapters.sql_tables import InboxRow, MessageRefRow
from grants.adapters.sql_trail import AUDIT, HEAD, SqlTrail, audit_filters
from grants.domain import AlreadyOpen, AuditEvent, Request
from grants.outbox import CLAIM_LEASE, Notice

__all__ = [
    "AUDIT", "HEAD", "INBOX", "OUTBOX", "REQUESTS", "SqlDatabase", "SqlStore", "_from_row", "_to_row", "as_utc", "audit_filters",
    "make_engine", "unreachable",
]  # fmt: skip

log = logging.getLogger(__name__)
REFS = MessageRefRow.__table__  # type: ignore[attr-defined]
INBOX = InboxRow.__table__  # type: ignore[attr-defined]


class SqlStore(SqlRequests, SqlTrail, SqlOutbox, SqlKeys):
    """Implements the store's ports (Requests, Trail, OutboxStore, Keys and the Writes unit of work) and the
    notifier's message references on SQLite or PostgreSQL, with SQLAlchemy Core statements on the hot paths."""

    def __init__(
        self,
        engine: Engine,
        claim_lease: timedelta = CLAIM_LEASE,
        watchers: Sequence[Callable[[AuditEvent], None]] = (),
    ):
        super().__init__(engine, claim_lease)
        # The inbox's and the due requests' claims (SqlInbox, SqlDue beside the store use them), renewed with the rest.
        self.inbox_claims = Claims(INBOX, [INBOX.c.done_at.is_(None)], claim_lease)
        self.due_claims = Claims(REQUESTS, [REQUESTS.c.wake_at.is_not(None)], claim_lease, due="wake_at")
        self.claimed += [self.inbox_claims, self.due_claims]
        self.watchers: list[Callable[[AuditEvent], None]] = list(watchers)  # told of every committed audit event

    def watch(self, on_committed: Callable[[AuditEvent], None]) -> None:
        """Call `on_committed(event)` after each commit that wrote an audit event (metrics, the audit log)."""
        self.watchers.append(on_committed)

    def _committed(self, event: AuditEvent) -> None:
        for on_committed in self.watchers:
            try:
                on_committed(event)
            except Exception:  # the change is committed: a watcher's failure must not read as the write's
                log.exception("an on_committed hook failed for %s", event.event)

    # the unit of work: a request's change, its audit event and its notices, all or nothing ---------

    def commit(
        self, request: Request, event: AuditEvent, notices: Sequence[Notice] = (), expected_version: int | None = None
    ) -> bool:
        try:
            with self._writing() as connection:
                if expected_version is None:
                    self._insert(connection, request)
                elif not self._swap(connection, request, expected_version):
                    return False  # someone else moved it first: nothing was written
                linked = self._append(connection, event)
                # Same transaction as the change: a crash leaves all or none, never a change nobody is told of.
                self._enqueue(connection, notices, event.at)
        except IntegrityError as exc:
            if "uq_requests_one_open" in str(exc.orig) or "requests.requester, requests.scope" in str(exc.orig):
                raise AlreadyOpen(f"You already have an open request for `{request.scope}`.", field="scope") from None
            raise
        self._committed(linked)
        return True

    def record(self, event: AuditEvent) -> AuditEvent:
        with self._writing() as connection:
            linked = self._append(connection, event)
        self._committed(linked)
        return linked

    # message references (used by the Slack notifier) -----------------------------------------------

    def add_message_ref(self, request_id: str, channel: str, ts: str, step: int | None = None) -> None:
        with self._writing() as connection:
            connection.execute(REFS.insert().values(request_id=request_id, channel=channel, ts=ts, step=step))

    def message_refs(self, request_id: str) -> list[tuple[str, str, int | None]]:
        query = select(REFS.c.channel, REFS.c.ts, REFS.c.step).where(REFS.c.request_id == request_id).order_by(REFS.c.id)
        with self.reader.connect() as connection:
            return [(channel, ts, step) for channel, ts, step in connection.execute(query)]
