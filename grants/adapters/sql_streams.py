"""The audit stream's side of the store: a cursor row per sink, claimed with the one lease mechanism (Claims)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy import func, select

from grants.adapters.claims import Claims
from grants.adapters.sql_store import SqlStore, as_utc
from grants.adapters.sql_tables import AuditRow, AuditStreamRow
from grants.audit import AuditQuery, at_text, write_export_rows
from grants.audit_stream import Cursor

STREAMS = AuditStreamRow.__table__  # type: ignore[attr-defined]
AUDIT = AuditRow.__table__  # type: ignore[attr-defined]


class SqlStreamStore:
    """Implements grants.audit_stream.StreamStore over the bot's store (same engine, same one-writer rules)."""

    def __init__(self, store: SqlStore):
        self.store = store
        self.claims = Claims(STREAMS, [], store.claim_lease)  # a cursor row is never settled: always open

    def ensure_streams(self, names: list[str], now: datetime) -> None:
        with self.store._writing() as connection:
            have = set(connection.execute(select(STREAMS.c.name)).scalars())
            for name in sorted(set(names) - have):
                # A new sink starts from the first event: a SIEM wants the whole trail, not just what comes next.
                connection.execute(STREAMS.insert().values(name=name, next_attempt_at=now))

    def claim_stream(self, name: str, worker: str, now: datetime) -> Cursor | None:
        with self.store._writing() as connection:
            rows = self.claims.claim(connection, worker, now, 1, STREAMS.c.name == name)
        if not rows:
            return None
        row = rows[0]
        return Cursor(row.delivered_seq, row.replay_seq, as_utc(row.lag_since), bool(row.alerted))

    def renew_streams(self, worker_prefix: str, now: datetime) -> int:
        with self.store._writing() as connection:
            return self.claims.renew(connection, worker_prefix, now)

    def lines_after(self, seq: int, limit: int) -> list[tuple[int, datetime, str]]:
        rows = self.store.event_rows(AuditQuery(from_seq=seq + 1))
        try:
            taken = list(islice(rows, limit))
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()  # hands the streaming connection back at once
        out = []
        for row in taken:
            buffer = io.StringIO()
            write_export_rows([row], buffer, "jsonl")  # the export's own writer: the same bytes as `jitbot audit export`
            out.append((int(row[0]), at_of(row[1]), buffer.getvalue()))
        return out

    def advance_stream(self, name: str, worker: str, cursor: Cursor, now: datetime) -> bool:
        values: dict[str, object] = {"delivered_seq": cursor.delivered, "replay_seq": cursor.replay_from, "attempts": 0}
        values |= {"lag_since": cursor.lag_since, "alerted": cursor.alerted}
        with self.store._writing() as connection:
            # Only the lease holder moves the cursor: a worker whose lease lapsed (it stalled) must not move it back.
            result = connection.execute(
                STREAMS.update()
                .where(STREAMS.c.name == name, STREAMS.c.claimed_by == worker[:64])
                .values(**values, next_attempt_at=now, claimed_by=None, claimed_until=None)
            )
            return bool(result.rowcount)

    def retry_stream(self, name: str, worker: str, when: datetime, cursor: Cursor, attempts: int) -> None:
        with self.store._writing() as connection:
            connection.execute(
                STREAMS.update()
                .where(STREAMS.c.name == name, STREAMS.c.claimed_by == worker[:64])
                .values(
                    next_attempt_at=when, claimed_by=None, claimed_until=None, attempts=attempts,
                    lag_since=cursor.lag_since, alerted=cursor.alerted,
                )
            )  # fmt: skip

    def stream_lag(self) -> dict[str, tuple[int, float]]:
        head, _ = self.store.chain_head()
        now = datetime.now(UTC)
        lag: dict[str, tuple[int, float]] = {}
        with self.store.reader.connect() as connection:
            for name, delivered in connection.execute(select(STREAMS.c.name, STREAMS.c.delivered_seq)):
                oldest = connection.execute(select(func.min(AUDIT.c.at)).where(AUDIT.c.seq == delivered + 1)).scalar()
                age = (now - at_of(oldest)).total_seconds() if oldest is not None else 0.0
                lag[str(name)] = (max(head - int(delivered), 0), max(age, 0.0))
        return lag


def at_of(value: datetime | str) -> datetime:
    return datetime.fromisoformat(at_text(value)).astimezone(UTC)
