"""The SQLModel store: requests with compare-and-swap writes and the hash-chained audit trail."""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, String, and_, cast, create_engine, event, exists, func, or_, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from grants.adapters.claims import Claims
from grants.adapters.sql_tables import (
    AuditHeadRow,
    AuditRow,
    CsrRow,
    InboxRow,
    MessageRefRow,
    OutboxRow,
    RequestRow,
    SshKeyRow,
)
from grants.adapters.sqlite_csv import csv_pages
from grants.audit import GENESIS_HASH, AuditQuery, at_text, chained, detail_text
from grants.credentials import CredentialHandle
from grants.domain import AlreadyOpen, Approval, AuditEvent, Grant, PendingExtension, Request, Review, State
from grants.lifecycle import Event
from grants.outbox import CLAIM_LEASE, CREDENTIAL, UNORDERED, Entry, Notice


def make_engine(url: str, writer: bool = True) -> Engine:
    """An engine that survives dropped connections and serializes SQLite writers safely."""
    if url.startswith("sqlite"):
        # hide_parameters: an exception's text never carries bound values (reasons, request rows) into logs.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front, so a read-then-write never deadlocks;
            # a reader engine begins DEFERRED and, in WAL mode, never waits for a writer.
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    # Sessions in UTC, whatever the server's default: `at` is hashed and exported as UTC.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args={"options": "-c timezone=utc"}, hide_parameters=True
    )


def unreachable(url: str) -> str | None:
    """Why the database at `url` cannot be used (the driver's first line: no password, no user data), or None."""
    # A bounded wait: an address that drops packets would otherwise hold start-up for minutes.
    engine = create_engine(url, connect_args={"connect_timeout": 10} if url.startswith("postgresql") else {})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_row(request: Request) -> dict[str, Any]:
    """The request's value objects, flattened into the one `requests` row (the schema predates them)."""
    approval, grant, review = request.approval, request.grant, request.review
    return {
        "id": request.id,
        "scope": request.scope,
        "requester": request.requester,
        "duration_seconds": int(request.duration.total_seconds()),
        "reason": request.reason,
        "state": request.state.value,
        "created_at": request.created_at,
        "pending_until": request.pending_until,
        "approvals": list(approval.given),
        "approvals_required": approval.required,
        "decided_by": approval.decided_by,
        "decided_at": approval.decided_at,
        "reminders_sent": approval.reminders_sent,
        "escalated": approval.escalated,
        "nudged_at": approval.nudged_at,
        "issued_at": grant.issued_at if grant else None,
        "expires_at": grant.expires_at if grant else None,
        "accessor": str(grant.handle) if grant else None,
        "credential_seal": grant.seal if grant else None,
        "revoke_attempts": grant.revoke_attempts if grant else 0,
        "extensions": grant.extensions if grant else 0,
        "warned": grant.warned if grant else False,
        "extension_pending_seconds": int(request.extension.added.total_seconds()) if request.extension else None,
        "extension_number": request.extension.number if request.extension else None,
        "review_state": review.state if review else None,
        "review_due_at": review.due_at if review else None,
        "reviewed_by": review.reviewed_by if review else None,
        "break_glass": request.break_glass,
        "on_behalf_of": request.on_behalf_of,
        "ticket": request.ticket,
        "not_after": request.not_after,
        "starts_at": request.starts_at,
        "ended_at": request.ended_at,
        "wake_at": request.wake_at,
        "version": request.version,
    }


def _from_row(row: Any) -> Request:
    grant = None
    if row.accessor is not None and row.issued_at is not None and row.expires_at is not None:
        grant = Grant(
            handle=CredentialHandle.parse(row.accessor),
            issued_at=as_utc(row.issued_at),  # type: ignore[arg-type]
            expires_at=as_utc(row.expires_at),  # type: ignore[arg-type]
            extensions=row.extensions,
            warned=row.warned,
            revoke_attempts=row.revoke_attempts,
            seal=row.credential_seal,
        )
    return Request(
        id=row.id,
        scope=row.scope,
        requester=row.requester,
        duration=timedelta(seconds=row.duration_seconds),
        reason=row.reason,
        state=State(row.state),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        pending_until=as_utc(row.pending_until),  # type: ignore[arg-type]
        approval=Approval(
            required=row.approvals_required,
            given=tuple(row.approvals),
            decided_by=row.decided_by,
            decided_at=as_utc(row.decided_at),
            reminders_sent=row.reminders_sent,
            escalated=row.escalated,
            nudged_at=as_utc(row.nudged_at),
        ),
        grant=grant,
        extension=_pending_extension(row),
        review=Review(row.review_state, as_utc(row.review_due_at), row.reviewed_by) if row.review_state else None,
        break_glass=row.break_glass,
        on_behalf_of=row.on_behalf_of,
        ticket=row.ticket,
        not_after=as_utc(row.not_after),
        starts_at=as_utc(row.starts_at),
        ended_at=as_utc(row.ended_at),
        wake_at=as_utc(row.wake_at),
        version=row.version,
    )


def _pending_extension(row: Any) -> PendingExtension | None:
    if not row.extension_pending_seconds:
        return None
    return PendingExtension(timedelta(seconds=row.extension_pending_seconds), number=row.extension_number)


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


REQUESTS = RequestRow.__table__  # type: ignore[attr-defined]
AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
HEAD = AuditHeadRow.__table__  # type: ignore[attr-defined]
REFS = MessageRefRow.__table__  # type: ignore[attr-defined]
SSH_KEYS = SshKeyRow.__table__  # type: ignore[attr-defined]
CSRS = CsrRow.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
INBOX = InboxRow.__table__  # type: ignore[attr-defined]


def _outbox_rows(notices: Iterable[Notice], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "request_id": n.request_id,
            "kind": n.kind,
            "payload": json.dumps(n.args, sort_keys=True),
            "created_at": at,
            "attempts": 0,
            "next_attempt_at": at + n.due_in if n.due_in else at,
        }
        for n in notices
    ]


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


class SqlStore:
    """Implements the Store port (and the notifier's message references) on SQLite or PostgreSQL,
    with SQLAlchemy Core statements on the hot paths."""

    def __init__(self, engine: Engine, claim_lease: timedelta = CLAIM_LEASE):
        self.engine = engine
        sqlite = engine.dialect.name == "sqlite"
        self.reader = make_engine(engine.url.render_as_string(hide_password=False), writer=False) if sqlite else engine
        # SQLite has one writer at a time, and one process (`jitbot serve`): our threads queue on a lock, woken the
        # moment the last writer commits, instead of polling in SQLite's busy handler (1, 2, 5 … 100 ms sleeps).
        self._write_lock: AbstractContextManager[Any] = threading.Lock() if sqlite else nullcontext()
        # How long a worker's claim holds: longer than any one piece of work (a delivery, a click).
        self.claim_lease = claim_lease
        self.outbox_claims = Claims(OUTBOX, [OUTBOX.c.delivered_at.is_(None), OUTBOX.c.failed_at.is_(None)], claim_lease)
        # The inbox's and the due requests' claims live here too (SqlInbox, SqlDue use them): one heartbeat renews a
        # process's leases on every claimed table.
        self.inbox_claims = Claims(INBOX, [INBOX.c.done_at.is_(None)], claim_lease)
        self.due_claims = Claims(REQUESTS, [REQUESTS.c.wake_at.is_not(None)], claim_lease, due="wake_at")
        self.claimed: tuple[Claims, ...] = (self.outbox_claims, self.inbox_claims, self.due_claims)

    def close(self) -> None:
        """Close every pooled connection (a stopped runtime holds no sockets or file handles)."""
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """A write transaction, taken after the in-process writer lock (a no-op on PostgreSQL)."""
        with self._write_lock, self.engine.begin() as connection:
            yield connection

    # requests -----------------------------------------------------------------------------------

    def create(self, request: Request, event: AuditEvent, notices: Sequence[Notice] = ()) -> None:
        try:
            with self._writing() as connection:
                connection.execute(REQUESTS.insert().values(**_to_row(request)))
                self._append(connection, event)
                self._enqueue(connection, notices, event.at)
        except IntegrityError as exc:
            if "uq_requests_one_open" in str(exc.orig) or "requests.requester, requests.scope" in str(exc.orig):
                raise AlreadyOpen(f"You already have an open request for `{request.scope}`.", field="scope") from None
            raise

    def save(self, request: Request, expected_version: int, event: AuditEvent | None, notices: Sequence[Notice] = ()) -> bool:
        values = _to_row(request)
        del values["id"]
        with self._writing() as connection:
            result = connection.execute(
                REQUESTS.update().where(REQUESTS.c.id == request.id, REQUESTS.c.version == expected_version).values(**values)
            )
            if result.rowcount != 1:
                return False  # someone else moved it first: nothing was written
            if event is not None:
                self._append(connection, event)
            # Same transaction as the change: a crash leaves both or neither, never a change nobody is told of.
            self._enqueue(connection, notices, event.at if event is not None else datetime.now(UTC))
            return True

    def get(self, request_id: str) -> Request | None:
        return next(iter(self._requests(select(REQUESTS).where(REQUESTS.c.id == request_id))), None)

    def find(
        self,
        *,
        states: Collection[State] | None = None,
        requester: str | None = None,
        scopes: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[Request]:
        query = select(REQUESTS).order_by(REQUESTS.c.created_at.desc())
        if states is not None:
            query = query.where(REQUESTS.c.state.in_([s.value for s in states]))
        if requester is not None:
            query = query.where(REQUESTS.c.requester == requester)
        if scopes is not None:
            query = query.where(REQUESTS.c.scope.in_(list(scopes)))
        if limit is not None:
            query = query.limit(limit)
        return self._requests(query)

    def count_requests(self, requester: str, since: datetime) -> int:
        query = select(func.count()).where(REQUESTS.c.requester == requester, REQUESTS.c.created_at >= since)
        with self.reader.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def open_reviews(self) -> list[Request]:
        return self._requests(select(REQUESTS).where(REQUESTS.c.review_state == "open").order_by(REQUESTS.c.created_at))

    def count(self, state: State) -> int:
        with self.reader.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(REQUESTS).where(REQUESTS.c.state == state.value)).scalar_one()
            )

    def _requests(self, query: Any) -> list[Request]:
        with self.reader.connect() as connection:
            return [_from_row(row) for row in connection.execute(query)]

    # audit ----------------------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> AuditEvent:
        with self._writing() as connection:
            return self._append(connection, event)

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

    # the outbox ---------------------------------------------------------------------------------------

    def _enqueue(self, connection: Any, notices: Sequence[Notice], at: datetime) -> None:
        if notices:
            connection.execute(OUTBOX.insert(), _outbox_rows(notices, at))

    def enqueue(self, notices: Iterable[Notice], at: datetime) -> None:
        rows = _outbox_rows(notices, at)
        if rows:
            with self._writing() as connection:
                connection.execute(OUTBOX.insert(), rows)

    def claim(self, worker: str, now: datetime, limit: int) -> list[Entry]:
        """Due, unsettled rows whose lease is free and that head their request's queue (see Claims)."""
        earlier = OUTBOX.alias("earlier")
        ordered = OUTBOX.c.kind.not_in(UNORDERED)
        blocked = exists().where(
            earlier.c.request_id == OUTBOX.c.request_id,
            earlier.c.id < OUTBOX.c.id,
            earlier.c.delivered_at.is_(None),
            earlier.c.failed_at.is_(None),
            earlier.c.kind.not_in(UNORDERED),
        )
        columns = [OUTBOX.c.id, OUTBOX.c.request_id, OUTBOX.c.kind, OUTBOX.c.payload, OUTBOX.c.created_at, OUTBOX.c.attempts]
        head = or_(OUTBOX.c.request_id.is_(None), ~and_(ordered, blocked))
        with self._writing() as connection:
            rows = self.outbox_claims.claim(connection, worker, now, limit, head, columns=columns)
        return [
            Entry(r.id, Notice(r.kind, r.request_id, json.loads(r.payload)), as_utc(r.created_at), r.attempts)  # type: ignore[arg-type]
            for r in rows
        ]

    def delivered(self, entry_id: int, at: datetime) -> None:
        self._settle(entry_id, delivered_at=at, claimed_until=None)

    def renew_claims(self, worker_prefix: str, now: datetime) -> int:
        with self._writing() as connection:
            return sum(claims.renew(connection, worker_prefix, now) for claims in self.claimed)

    def retry_at(self, entry_id: int, when: datetime) -> None:
        with self._writing() as connection:
            self.outbox_claims.release(connection, entry_id, when, attempts=OUTBOX.c.attempts + 1)

    def failed(self, entry_id: int, at: datetime) -> None:
        self._settle(entry_id, failed_at=at, claimed_until=None)

    def _settle(self, entry_id: int, **values: Any) -> None:
        with self._writing() as connection:
            connection.execute(OUTBOX.update().where(OUTBOX.c.id == entry_id).values(**values))

    def settle_credential(self, request_id: str, accessor: str, at: datetime) -> None:
        # The accessor is matched in the JSON text: payloads are written with sorted keys by _outbox_rows, so it is
        # the first key (the wrapping token's accessor and expiry follow it).
        alone = json.dumps({"accessor": accessor}, sort_keys=True)
        matches = or_(OUTBOX.c.payload == alone, OUTBOX.c.payload.startswith(alone[:-1] + ", ", autoescape=True))
        with self._writing() as connection:
            connection.execute(
                OUTBOX.update()
                .where(OUTBOX.c.request_id == request_id, OUTBOX.c.kind == CREDENTIAL, matches)
                .where(OUTBOX.c.delivered_at.is_(None))
                .values(delivered_at=at)
            )

    def outbox_backlog(self) -> int:
        """Unsettled rows (for health and operators)."""
        query = select(func.count()).select_from(OUTBOX).where(OUTBOX.c.delivered_at.is_(None), OUTBOX.c.failed_at.is_(None))
        with self.reader.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # message references (used by the Slack notifier) -----------------------------------------------

    def add_message_ref(self, request_id: str, channel: str, ts: str, step: int | None = None) -> None:
        with self._writing() as connection:
            connection.execute(REFS.insert().values(request_id=request_id, channel=channel, ts=ts, step=step))

    def message_refs(self, request_id: str) -> list[tuple[str, str, int | None]]:
        query = select(REFS.c.channel, REFS.c.ts, REFS.c.step).where(REFS.c.request_id == request_id).order_by(REFS.c.id)
        with self.reader.connect() as connection:
            return [(channel, ts, step) for channel, ts, step in connection.execute(query)]

    def ssh_key(self, user: str) -> str | None:
        with self.reader.connect() as connection:
            found = connection.execute(select(SSH_KEYS.c.public_key).where(SSH_KEYS.c.user_id == user)).scalar()
        return str(found) if found is not None else None

    def set_ssh_key(self, user: str, public_key: str, fingerprint: str, at: datetime) -> None:
        row = {"public_key": public_key, "fingerprint": fingerprint, "registered_at": at}
        with self._writing() as connection:
            # Delete then insert in one transaction: the same on SQLite and PostgreSQL, no upsert dialects.
            connection.execute(SSH_KEYS.delete().where(SSH_KEYS.c.user_id == user))
            connection.execute(SSH_KEYS.insert().values(user_id=user, **row))

    def csr(self, user: str) -> str | None:
        with self.reader.connect() as connection:
            found = connection.execute(select(CSRS.c.csr).where(CSRS.c.user_id == user)).scalar()
        return str(found) if found is not None else None

    def set_csr(self, user: str, csr: str, fingerprint: str, at: datetime) -> None:
        with self._writing() as connection:
            connection.execute(CSRS.delete().where(CSRS.c.user_id == user))
            connection.execute(CSRS.insert().values(user_id=user, csr=csr, fingerprint=fingerprint, registered_at=at))

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

    def chain_head(self) -> tuple[int, str]:
        """The last seq and hash the chain head records (0 and the genesis hash when empty)."""
        with self.reader.connect() as connection:
            head = connection.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1)).first()
        return (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)

    def healthy(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False
