"""The audit stream's delivery on SQLite and PostgreSQL: the sink's cursor is claimed with the one lease mechanism
(two workers never send at once; a stalled one cannot move the cursor back), a failed batch is sent again from
where it was, a broken connection resends the last batch, and one outage past the threshold is one alert."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from grants.adapters.sql_store import SqlStore
from grants.adapters.sql_streams import SqlStreamStore
from grants.audit import AuditQuery, write_export_rows
from grants.audit_stream import AuditStream, Cursor, SinkError, Streamer, syslog_frame
from grants.domain import AuditEvent
from grants.lifecycle import Event
from tests.databases import fresh_store


class Collector:
    """A sink the test controls: it takes batches, or refuses them, or loses its connection."""

    name = "syslog"

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.down = False
        self.broken = True  # the first send opens a connection

    def fresh(self) -> bool:
        return self.broken

    def send(self, lines: list[str]) -> None:
        if self.down:
            self.broken = True
            raise SinkError("down")
        self.broken = False
        self.lines += lines

    def close(self) -> None:
        pass


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    with fresh_store(request.param, tmp_path) as store:
        yield store


def append(store: SqlStore, n: int, at: datetime) -> None:
    for i in range(n):
        store.record(AuditEvent(event=Event.EXPORTED, at=at, actor="U0AUDIT01", detail={"n": i, "note": "café"}))


def exported(store: SqlStore) -> list[str]:
    out = io.StringIO()
    write_export_rows(store.event_rows(AuditQuery()), out, "jsonl")
    return out.getvalue().splitlines(keepends=True)


def make(store: SqlStore, sink: Collector, now: list[datetime], alerts: list[tuple[str, int, datetime]], **settings):
    config = AuditStream(syslog="tcp://127.0.0.1:6514", **settings)
    streamer = Streamer(SqlStreamStore(store), [sink], lambda: now[0], config, lambda *a: alerts.append(a))
    streamer.start()
    return streamer


def test_every_event_goes_out_in_order_as_the_export_writes_it_and_a_failed_batch_is_sent_again(store) -> None:
    t0 = datetime.now(UTC)
    now, alerts, sink = [t0], [], Collector()
    streamer = make(store, sink, now, alerts, batch=4)
    append(store, 10, t0)
    while streamer.round("w1") > 0:
        pass
    assert sink.lines == exported(store)  # same bytes, same order
    append(store, 3, t0)
    sink.down = True
    assert streamer.round("w1") == 0  # refused: the cursor stays
    sink.down = False
    assert streamer.round("w1") == 0  # not due yet: backing off
    now[0] = t0 + timedelta(seconds=5)
    sent = []
    while (count := streamer.round("w1")) > 0:
        sent.append(count)
    assert sum(sent) == 3  # the resend of the last batch shares the batch size with the new events
    # The connection broke before the retry: the batch before the one that failed is sent again (a collector may
    # have lost it in its buffers); the receiver drops what it has by seq.
    assert sink.lines[:10] == exported(store)[:10]
    assert [line for line in sink.lines[10:] if line not in exported(store)[:10]] == exported(store)[10:]
    assert sorted(set(sink.lines)) == sorted(exported(store))
    assert alerts == []
    assert SqlStreamStore(store).stream_lag()["syslog"][0] == 0


def test_two_workers_never_hold_the_cursor_at_once_and_a_stalled_one_cannot_move_it(store) -> None:
    t0 = datetime.now(UTC)
    streams = SqlStreamStore(store)
    streams.ensure_streams(["syslog"], t0)
    first = streams.claim_stream("syslog", "host-1-a", t0)
    assert first == Cursor(0, 0, None, False)
    assert streams.claim_stream("syslog", "host-2-a", t0) is None  # held
    assert streams.renew_streams("host-1-", t0 + timedelta(seconds=8)) == 1  # the heartbeat keeps it
    assert streams.claim_stream("syslog", "host-2-a", t0 + timedelta(seconds=12)) is None
    later = t0 + timedelta(seconds=30)  # host-1 stalled: its lease lapsed, host-2 takes over and moves on
    taken = streams.claim_stream("syslog", "host-2-a", later)
    assert taken is not None
    assert streams.advance_stream("syslog", "host-2-a", Cursor(5, 0, None, False), later)
    assert not streams.advance_stream("syslog", "host-1-a", Cursor(2, 0, None, False), later)  # too late: refused
    again = streams.claim_stream("syslog", "host-1-a", later)
    assert again is not None and again.delivered == 5


def test_an_outage_past_the_threshold_is_one_alert_and_the_lag_is_measured(store) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    now, alerts, sink = [t0], [], Collector()
    streamer = make(store, sink, now, alerts, alert_after="15m")
    append(store, 5, t0)
    sink.down = True
    for minute in range(0, 60, 1):  # an hour of retries
        now[0] = t0 + timedelta(minutes=minute)
        streamer.round("w1")
    assert [(sink_name, behind) for sink_name, behind, _ in alerts] == [("syslog", 5)]  # once, not every retry
    behind, age = SqlStreamStore(store).stream_lag()["syslog"]
    assert behind == 5 and age >= 3500
    sink.down = False
    now[0] = t0 + timedelta(minutes=61)
    assert streamer.round("w1") == 5  # everything, once it is back
    assert sink.lines == exported(store)
    assert streamer.round("w1") == 0  # caught up: a later outage alerts again
    append(store, 1, now[0])
    sink.down = True
    for minute in range(62, 100):
        now[0] = t0 + timedelta(minutes=minute)
        streamer.round("w1")
    assert len(alerts) == 2


def test_the_syslog_record_is_rfc5424_with_octet_counting() -> None:
    line = '{"seq":7,"at":"2026-12-07T21:00:00.123456+00:00","event":"approved","detail":{"x":"é"}}\n'
    frame = syslog_frame(line, "bot-1")
    length, _, message = frame.partition(b" ")
    assert int(length) == len(message)  # RFC 6587: the length in octets, not characters
    assert message.decode() == (
        '<110>1 2026-12-07T21:00:00.123456Z bot-1 jitbot - approved - {"seq":7,"at":"2026-12-07T21:00:00.123456+00:00",'
        '"event":"approved","detail":{"x":"é"}}'
    )
    with pytest.raises(ValueError, match="tcp://, tls:// or relp://"):
        AuditStream(syslog="udp://siem:514")
    with pytest.raises(ValueError, match="https"):
        AuditStream(webhook="http://siem.example.com/in")
