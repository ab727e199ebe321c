"""Audited export of the audit trail: stream it out, then record that it was exported."""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any

from grants.audit import EXPORT_FIELDS, AuditQuery, write_export, write_export_rows
from grants.domain import AuditEvent
from grants.ports import Clock, Store


def _fast_csv(store: Store, query: AuditQuery, out: IO[str]) -> int | None:
    """Where the database can write the CSV lines itself (SQLite), let it; None elsewhere."""
    make_lines = getattr(store, "csv_lines", None)
    lines = make_lines(query) if make_lines else None
    if lines is None:
        return None
    out.write(",".join(EXPORT_FIELDS) + "\n")
    count = 0
    for chunk, rows in lines:
        out.write(chunk)
        count += rows
    return count


def export_trail(store: Store, clock: Clock, actor: str, query: AuditQuery, out: IO[str], fmt: str, **context: Any) -> int:
    count = _fast_csv(store, query, out) if fmt == "csv" else None
    if count is None:
        rows = getattr(store, "event_rows", None)  # a store that can hand over stored rows skips decoding them
        count = write_export_rows(rows(query), out, fmt) if rows else write_export(store.events(query), out, fmt)
    filters = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in vars(query).items() if v is not None}
    detail = {"format": fmt, "count": count, "filters": filters, **context}
    store.record(AuditEvent(event="exported", at=clock.now(), actor=actor, detail=detail))
    return count
