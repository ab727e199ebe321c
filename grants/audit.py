"""The audit trail's hash chain, its verification and its streaming CSV/JSONL export."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any

from grants.domain import AuditEvent
from grants.durations import DurationError, parse_duration

GENESIS_HASH = "0" * 64
EXPORT_FIELDS = ("seq", "at", "event", "request_id", "scope", "actor", "subject", "detail", "prev_hash", "hash")


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    scope: str | None = None
    user: str | None = None  # matches actor or subject
    from_seq: int | None = None  # events numbered from this one on (checking the chain from an anchor)


def _fields(event: AuditEvent) -> dict[str, object]:
    return {
        "seq": event.seq,
        "at": iso(event.at),
        "event": event.event,
        "request_id": event.request_id,
        "scope": event.scope,
        "actor": event.actor,
        "subject": event.subject,
        "detail": event.detail,
    }


def canonical_json(event: AuditEvent) -> str:
    """The exact bytes hashed: every field but the hashes, sorted keys, no whitespace."""
    return json.dumps(_fields(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + canonical_json(event)).encode("utf-8")).hexdigest()


def chained(event: AuditEvent, seq: int, prev_hash: str) -> AuditEvent:
    """`event` as the next link of the chain after `prev_hash`."""
    linked = replace(event, seq=seq, prev_hash=prev_hash)
    return replace(linked, hash=event_hash(prev_hash, linked))


@dataclass(frozen=True)
class Anchor:
    """The chain head as written outside the database, with the time the outside store says it was written."""

    seq: int
    hash: str
    at: datetime
    version: int = 0  # the outside store's version of it, for check-and-set writes (0: none written yet)


class AnchorMoved(Exception):
    """Someone wrote the anchor since it was read (another worker): nothing was written; read it again."""


@dataclass(frozen=True)
class Verdict:
    intact: bool
    count: int
    broken_seq: int | None = None
    why: str = ""
    last_hash: str = GENESIS_HASH
    anchor: Anchor | None = None  # the anchor checked against, if any
    hashes: dict[int, str] = field(default_factory=dict, repr=False)  # the hash at the seqs asked for


def verify(events: Iterable[AuditEvent], keep: frozenset[int] = frozenset()) -> Verdict:
    """Recompute the chain from the genesis; report the first event that does not fit. The hashes of the
    events numbered in `keep` are handed back (to compare with an anchor)."""
    prev_hash, expected_seq, count = GENESIS_HASH, 1, 0
    kept: dict[int, str] = {}
    for event in events:
        if event.seq != expected_seq:
            return Verdict(False, count, event.seq, f"sequence gap: expected {expected_seq}, found {event.seq}")
        if event.prev_hash != prev_hash:
            return Verdict(False, count, event.seq, "prev_hash does not match the previous event's hash")
        if event.hash != event_hash(prev_hash, event):
            return Verdict(False, count, event.seq, "hash does not match the event's contents")
        if event.seq in keep:
            kept[event.seq] = event.hash
        prev_hash, expected_seq, count = event.hash, expected_seq + 1, count + 1
    return Verdict(True, count, last_hash=prev_hash, hashes=kept)


def continues(events: Iterable[AuditEvent], anchor: Anchor | None, head: tuple[int, str]) -> str:
    """Why the stored chain does not lead from the anchored event to the chain head `head` (seq, hash), or "" when
    it does: the anchored event is there with its hash and contents unchanged, and every later event links to it up
    to the head. `events` starts at the anchored seq (from the genesis when nothing was anchored)."""
    seq, prev = (anchor.seq, anchor.hash) if anchor is not None else (0, GENESIS_HASH)
    head_seq, head_hash = head
    if head_seq < seq:
        return f"the database's chain head is at seq {head_seq}, below the anchored seq {seq}: the trail was truncated"
    stream = iter(events)
    if seq > 0:
        first = next(stream, None)
        if first is None or first.seq != seq:
            return f"the anchored event (seq {seq}) is missing: the trail was truncated"
        if first.hash != prev or event_hash(first.prev_hash or "", first) != prev:
            return f"the event at seq {seq} no longer has the anchored hash: the trail was rewritten"
    for event in stream:
        if (event.seq or 0) > head_seq:
            break
        if event.seq != seq + 1 or event.prev_hash != prev or event.hash != event_hash(prev, event):
            return f"the chain breaks at seq {seq + 1} after the anchored seq: the trail was altered"
        seq, prev = seq + 1, event.hash
    if (seq, prev) != (head_seq, head_hash):
        return f"the chain ends at seq {seq}, but the chain head says {head_seq}: the trail or its head was altered"
    return ""


def at_text(value: datetime | str) -> str:
    """`at` as exported (ISO 8601 with its UTC offset), from a datetime or SQLite's stored UTC text."""
    if isinstance(value, datetime):
        return iso(value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC))
    date, _, time = value.partition(" ")
    if "." not in time:
        time += ".000000"
    return f"{date}T{time}+00:00"


def write_export_rows(rows: Iterable[Sequence[Any]], out: IO[str], fmt: str) -> int:
    """Stream rows (detail as its canonical JSON text) as CSV or JSONL: a store can hand over its stored
    rows as they are, so a million events are never decoded and re-encoded."""
    count = 0
    if fmt == "jsonl":
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        for seq, at, event, request_id, scope, actor, subject, detail, prev_hash, hash_ in rows:
            head = dumps(
                {
                    "seq": seq,
                    "at": at_text(at),
                    "event": event,
                    "request_id": request_id,
                    "scope": scope,
                    "actor": actor,
                    "subject": subject,
                }
            )
            tail = dumps({"prev_hash": prev_hash, "hash": hash_})
            out.write(f'{head[:-1]},"detail":{detail},{tail[1:]}\n')
            count += 1
        return count
    if fmt != "csv":
        raise ValueError(f"unknown export format `{fmt}`; use csv or jsonl")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_FIELDS)
    for seq, at, event, request_id, scope, actor, subject, detail, prev_hash, hash_ in rows:
        writer.writerow((seq, at_text(at), event, request_id or "", scope or "", actor, subject or "", detail, prev_hash, hash_))
        count += 1
    return count


def write_export(events: Iterator[AuditEvent], out: IO[str], fmt: str) -> int:
    """Stream events to `out` as CSV or JSONL, one at a time; return how many were written."""
    rows = (
        (e.seq, e.at, e.event, e.request_id, e.scope, e.actor, e.subject, detail_text(e.detail), e.prev_hash, e.hash)
        for e in events
    )
    return write_export_rows(rows, out, fmt)


def detail_text(detail: dict[str, Any]) -> str:
    """The canonical JSON text of a detail, as stored and exported."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_time(text: str, now: datetime) -> datetime:
    """An ISO 8601 date or datetime (UTC when no offset is given), or an age such as `7d` (now minus it)."""
    value = text.strip()
    if value and value[0].isdigit() and value[-1] in "smhd" and "-" not in value:
        try:
            return now - parse_duration(value)
        except DurationError:
            pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"`{text}` is not a time; use an ISO date such as 2026-11-01, 2026-11-01T09:30Z, or an age such as 7d"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
