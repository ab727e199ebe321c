"""Durations, the hash chain, verification, export formats and time filters."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from grants.audit import EXPORT_FIELDS, GENESIS_HASH, chained, parse_time, verify, write_export, write_export_rows
from grants.domain import AuditEvent
from grants.durations import DurationError, format_duration, parse_duration

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172800)])
def test_durations_parse_and_format(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "10x", "h", "1.5h", "-5m", "0m", "30m1h"])
def test_bad_durations_say_what_to_type(text):
    with pytest.raises(DurationError, match=r"e\.g\. 90s, 15m"):
        parse_duration(text)


def chain(n: int) -> list[AuditEvent]:
    events, prev = [], GENESIS_HASH
    for i in range(n):
        e = chained(
            AuditEvent(
                event="requested", at=T0 + timedelta(seconds=i), actor="U1", request_id=f"JIT-{i}", detail={"reason": f"r{i}"}
            ),
            i + 1,
            prev,
        )
        events.append(e)
        prev = e.hash
    return events


def test_verify_finds_tampering_gaps_and_relinking():
    events = chain(5)
    assert verify(events).intact and verify(events).count == 5
    tampered = list(events)
    tampered[2] = AuditEvent(**{**vars(events[2]), "detail": {"reason": "edited"}})
    assert verify(tampered).broken_seq == 3
    assert verify(events[:2] + events[3:]).why.startswith("sequence gap")


def test_exports_carry_exactly_the_ten_fields():
    events = chain(3)
    out = io.StringIO()
    assert write_export(iter(events), out, "csv") == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == EXPORT_FIELDS and json.loads(rows[0]["detail"]) == {"reason": "r0"}
    assert rows[0]["at"].endswith("+00:00")
    out = io.StringIO()
    write_export(iter(events), out, "jsonl")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert tuple(lines[0]) == EXPORT_FIELDS and lines[2]["hash"] == events[2].hash and lines[0]["detail"] == {"reason": "r0"}


@freeze_time("2026-11-29 12:00:00")
def test_parse_time_accepts_dates_datetimes_and_ages():
    now = datetime.now(UTC)
    assert parse_time("7d", now) == datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert parse_time("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_time("2026-11-01T09:30+01:00", now) == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO date"):
        parse_time("yesterday", now)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_fast_export_path_writes_the_same_bytes(fmt):
    events = chain(4)
    events[1] = chained(AuditEvent(event="exported", at=T0, actor="system", detail={"é": "ü", "n": [1, 2]}), 2, events[0].hash)
    slow, fast = io.StringIO(), io.StringIO()
    write_export(iter(events), slow, fmt)
    rows = [
        (
            e.seq,
            e.at.replace(tzinfo=None).isoformat(sep=" "),
            e.event,
            e.request_id,
            e.scope,
            e.actor,
            e.subject,
            json.dumps(e.detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            e.prev_hash,
            e.hash,
        )
        for e in events
    ]
    write_export_rows(rows, fast, fmt)
    assert fast.getvalue() == slow.getvalue()


def test_absurd_durations_are_refused_not_crashed():
    with pytest.raises(DurationError, match="too long"):
        parse_duration("9999999999d")
