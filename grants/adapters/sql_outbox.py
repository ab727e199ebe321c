"""The outbox on SQL: notices written with their change, claimed with a lease in order per request, then settled."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, exists, or_

from grants.adapters.claims import Claims
from grants.adapters.sql_db import SqlDatabase, as_utc
from grants.adapters.sql_tables import OutboxRow
from grants.outbox import CLAIM_LEASE, CREDENTIAL, UNORDERED, Entry, Notice

OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]


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


class SqlOutbox(SqlDatabase):
    """Implements the OutboxStore port; `_enqueue` writes notices inside the store's unit of work."""

    def __init__(self, engine: Engine, claim_lease: timedelta = CLAIM_LEASE):
        super().__init__(engine, claim_lease)
        self.outbox_claims = Claims(OUTBOX, [OUTBOX.c.delivered_at.is_(None), OUTBOX.c.failed_at.is_(None)], claim_lease)
        self.claimed.append(self.outbox_claims)

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
