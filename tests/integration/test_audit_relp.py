"""The audit stream over RELP to Debian's rsyslog (imrelp): the collector itself acknowledges every
message, so a collector that hangs and then dies with our bytes unread in its socket loses none of them."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest

from grants.adapters.audit_sinks import RelpSink
from grants.adapters.sql_streams import SqlStreamStore
from grants.audit_stream import AuditStream, SinkError, Streamer
from tests.e2e.test_outbox_processes import wait_until
from tests.integration.test_audit_stream import append, exported, store  # noqa: F401 (the store fixture)
from tests.siem_fixtures import Rsyslog


def export_lines(count: int, first: int = 1) -> list[str]:
    at = datetime(2026, 12, 8, tzinfo=UTC).isoformat()
    return [
        json.dumps({"seq": seq, "at": at, "event": "requested", "reason": "café ☕"}) + "\n"
        for seq in range(first, first + count)
    ]


def test_every_message_arrives_once_in_order_byte_for_byte(tmp_path) -> None:
    collector = Rsyslog(tmp_path, relp=True).start()
    try:
        sink = RelpSink(collector.url, timeout=10)
        lines = export_lines(700)  # several windows of in-flight messages
        sink.send(lines[:300])
        sink.send(lines[300:])  # the same session: transaction numbers go on
        sink.close()
        wait_until(lambda: len(collector.lines()) >= 700, 20, "rsyslog writing every message")
        assert collector.lines() == [line.rstrip("\n") for line in lines]
    finally:
        collector.stop()


def test_a_collector_that_hangs_then_dies_with_a_batch_unread_loses_none_of_it(tmp_path, store) -> None:  # noqa: F811
    """Over plain TCP the hung collector's kernel takes the bytes, so they count as taken and die with it; over RELP
    nothing is taken until rsyslog says so, and the stream sends the batch again once the collector is back."""
    collector = Rsyslog(tmp_path, relp=True).start()
    t0 = datetime.now(UTC)
    now, alerts = [t0], []
    config = AuditStream(syslog=collector.url, batch=50)
    streamer = Streamer(
        SqlStreamStore(store), [RelpSink(collector.url, timeout=1)], lambda: now[0], config, lambda *a: alerts.append(a)
    )
    streamer.start()
    try:
        append(store, 30, t0)
        assert streamer.round("w1") == 30
        wait_until(lambda: len(collector.lines()) >= 30, 20, "rsyslog writing the first batch")  # out of its queue
        collector.freeze()
        append(store, 20, t0)
        assert streamer.round("w1") == 0  # no acknowledgement within the timeout: not taken, the cursor stays
        collector.kill()  # with the 20 unread in its socket
        collector.start()
        now[0] = t0 + timedelta(seconds=5)  # past the retry's backoff
        assert streamer.round("w1") == 20
        wait_until(lambda: len(collector.lines()) >= 50, 20, "rsyslog writing the batch sent again")
        assert collector.lines() == [line.rstrip("\n") for line in exported(store)]  # each once, in order
        assert SqlStreamStore(store).stream_lag()["syslog"][0] == 0
    finally:
        collector.stop()


class RelpPeer:
    """A RELP server that opens sessions and then answers the syslog command as told (an error, or serverclose)."""

    def __init__(self, answer: bytes):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url, self.answer = f"relp://127.0.0.1:{self.listener.getsockname()[1]}", answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(4096)  # the open offer
            connection.sendall(b"1 rsp 6 200 OK\n")
            connection.recv(4096)  # the first syslog message
            connection.sendall(self.answer)


@pytest.mark.parametrize(
    "answer", [b"2 rsp 21 500 queue full, retry\n", b"0 serverclose 0\n", b"7 rsp 6 200 OK\n", b"2 rsp 9 200 O\n"]
)
def test_anything_but_an_acknowledgement_of_that_very_message_is_not_taken(answer) -> None:
    sink = RelpSink(RelpPeer(answer).url, timeout=2)
    with pytest.raises(SinkError):
        sink.send(export_lines(1))
    assert sink._sock is None  # the session is dropped: the next round opens a new one


def test_the_catalog_takes_relp_urls_and_names_every_scheme_it_takes() -> None:
    assert AuditStream(syslog="relp://siem.internal:2514").syslog == "relp://siem.internal:2514"
    with pytest.raises(ValueError, match=r"tcp://, tls:// or relp://"):
        AuditStream(syslog="udp://siem.internal:514")
