"""The audit trail as a use case: an audited export, and verification of the chain against its head."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import IO, Any

from grants.audit import EXPORT_FIELDS, AuditQuery, Verdict, verify, write_export_rows
from grants.domain import AuditEvent
from grants.lifecycle import Event
from grants.ports import AuditAnchor, Clock, Store
from grants.usecases import deps


def export(store: Store, clock: Clock, actor: str, query: AuditQuery, out: IO[str], fmt: str, **context: Any) -> int:
    """Stream the trail to `out` as CSV or JSONL, then record that it was exported (format, filters, count)."""
    lines = store.csv_lines(query) if fmt == "csv" else None
    if lines is not None:  # the database builds the CSV lines itself (SQLite): same bytes, a fraction of the time
        out.write(",".join(EXPORT_FIELDS) + "\n")
        count = 0
        for chunk, rows in lines:
            out.write(chunk)
            count += rows
    else:
        count = write_export_rows(store.event_rows(query), out, fmt)
    filters = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in vars(query).items() if v is not None}
    detail = {"format": fmt, "count": count, "filters": filters, **context}
    # Through the one guarded writer of trail events (deps.append_trail, as Deps.record_trail), like every other event about no request.
    deps.append_trail(store, AuditEvent(event=Event.EXPORTED, at=clock.now(), actor=actor, detail=detail))
    return count


def verify_trail(store: Store, anchor: AuditAnchor | None = None) -> Verdict:
    """Recompute the whole chain, compare its end with the chain head (deleting the newest events is tampering
    too), then with the anchor outside the database: someone who can write the database but not Vault can
    neither truncate the trail below the anchor nor rewrite (and re-hash) anything up to it."""
    outside = anchor.latest() if anchor is not None else None
    verdict = verify(store.events(AuditQuery()), frozenset({outside.seq}) if outside else frozenset())
    verdict = replace(verdict, anchor=outside)
    if not verdict.intact:
        return verdict
    if outside is not None and verdict.count < outside.seq:
        return replace(verdict, intact=False, broken_seq=verdict.count + 1,
                       why=f"the anchor outside the database says {outside.seq} events: the trail was truncated")  # fmt: skip
    if outside is not None and verdict.hashes.get(outside.seq) != outside.hash:
        return replace(verdict, intact=False, broken_seq=outside.seq,
                       why="the event's hash differs from the anchor outside the database: the trail was rewritten")  # fmt: skip
    head_seq, head_hash = store.chain_head()
    if (verdict.count, verdict.last_hash) != (head_seq, head_hash):
        return replace(
            verdict,
            intact=False,
            broken_seq=verdict.count + 1,
            why=f"the chain head says {head_seq} events: the newest were deleted",
        )
    return verdict


def anchor_chain(store: Store, anchor: AuditAnchor, anchored: int) -> int:
    """Write the chain head outside the database when it moved since `anchored`; the seq now anchored."""
    seq, hash_ = store.chain_head()
    if seq > anchored:
        anchor.write(seq, hash_)
    return max(seq, anchored)
