"""Audited export of the audit trail: stream it out, then record that it was exported."""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any

from grants.audit import AuditQuery, write_export, write_export_rows
from grants.domain import AuditEvent
from grants.ports import Clock, Store


def export_trail(store: Store, clock: Clock, actor: str, query: AuditQuery, out: IO[str], fmt: str, **context: Any) -> int:
    rows = getattr(store, "event_rows", None)  # a store that can hand over stored rows skips decoding them
    count = write_export_rows(rows(query), out, fmt) if rows else write_export(store.events(query), out, fmt)
    filters = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in vars(query).items() if v is not None}
    detail = {"format": fmt, "count": count, "filters": filters, **context}
    store.record(AuditEvent(event="exported", at=clock.now(), actor=actor, detail=detail))
    return count
