"""Requests on SQL: the one row a `Request` flattens into, its insert and compare-and-swap, and the reads."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from grants.adapters.sql_db import SqlDatabase, as_utc
from grants.adapters.sql_tables import RequestRow
from grants.credentials import CredentialHandle
from grants.domain import Approval, Grant, PendingExtension, Request, Review, State

REQUESTS = RequestRow.__table__  # type: ignore[attr-defined]


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


class SqlRequests(SqlDatabase):
    """The requests table: written only inside the store's unit of work (`_insert`, `_swap`), read by anyone."""

    @staticmethod
    def _insert(connection: Any, request: Request) -> None:
        connection.execute(REQUESTS.insert().values(**_to_row(request)))

    @staticmethod
    def _swap(connection: Any, request: Request, expected_version: int) -> bool:
        """Write `request` over the row only if its version is still `expected_version`."""
        values = _to_row(request)
        del values["id"]
        result = connection.execute(
            REQUESTS.update().where(REQUESTS.c.id == request.id, REQUESTS.c.version == expected_version).values(**values)
        )
        return bool(result.rowcount == 1)

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
