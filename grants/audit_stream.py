"""The audit trail streamed to a SIEM as it happens: the settings, the RFC 5424 record, and one delivery round."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from grants.durations import Duration

if TYPE_CHECKING:
    from grants.ports import Sink, StreamStore

# RFC 5424 PRI: facility 13 ("log audit") * 8 + severity 6 ("informational").
PRI = 13 * 8 + 6
APP_NAME = "jitbot"
SYSLOG_SCHEMES = ("tcp", "tls", "relp")
RETRY_MAX = timedelta(seconds=30)  # a collector back after an hour gets the backlog within this


def backoff(attempts: int) -> timedelta:
    delay: timedelta = timedelta(seconds=1) * 2 ** min(max(attempts - 1, 0), 10)
    return min(delay, RETRY_MAX)


class AuditStream(BaseModel):
    """`[settings.audit_stream]`: where every audit event goes as it is written (syslog and/or a webhook)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    syslog: str = ""  # tcp://, tls:// or relp://host:port
    syslog_ca: str = ""  # tls://: the CA file the collector's certificate is checked against (default: the system's)
    webhook: str = ""  # https://…; the HMAC secret comes from JITBOT_AUDIT_WEBHOOK_SECRET, never the catalog
    webhook_ca: str = ""
    batch: int = Field(default=200, ge=1, le=5000)  # events per syslog write or webhook POST
    alert_after: Duration = Duration("15m")  # the alert channel is told when the oldest undelivered event is older than this

    @field_validator("syslog")
    @classmethod
    def _syslog(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in SYSLOG_SCHEMES or not parts.hostname or not parts.port or parts.path):
            raise ValueError(
                "must be tcp://, tls:// or relp:// and host:port (RFC 5424 over TCP with octet counting, "
                "or over RELP, which the collector acknowledges message by message)"
            )
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str) -> str:
        # The trail names people and what they reached: it never crosses a network in clear.
        if value and (urlsplit(value).scheme != "https" or not urlsplit(value).hostname):
            raise ValueError("must be an https:// URL")
        return value


def syslog_message(line: str, hostname: str) -> bytes:
    """One export line (a JSON object) as an RFC 5424 message: APP-NAME jitbot, MSGID the event name, TIMESTAMP the
    event's time, MSG the line's bytes exactly (without its newline)."""
    record = json.loads(line)
    at = str(record["at"]).replace("+00:00", "Z")
    header = f"<{PRI}>1 {at} {hostname[:255] or '-'} {APP_NAME} - {str(record['event'])[:32]} - "
    return (header + line.rstrip("\n")).encode("utf-8")


def syslog_frame(line: str, hostname: str) -> bytes:
    """The message framed by octet counting (RFC 6587), as plain TCP and TLS syslog carry it."""
    message = syslog_message(line, hostname)
    return f"{len(message)} ".encode("ascii") + message


class SinkError(Exception):
    """The collector did not take the batch (down, refused, slow); the message never holds event content."""


@dataclass(frozen=True)
class Cursor:
    """A sink's place in the trail: everything up to `delivered` was taken; `replay_from` is where the batch before
    the last one ended (a broken connection may have lost the last batch in the collector's buffers)."""

    delivered: int
    replay_from: int
    lag_since: datetime | None  # when the sink fell behind (None: caught up)
    alerted: bool


@dataclass
class Streamer:
    """One delivery round per sink: claim its cursor, send the next batch in seq order, advance. At least once: the
    cursor moves only after the collector took the batch; a crash or a broken connection sends it again."""

    store: StreamStore
    sinks: list[Sink]
    now: Callable[[], datetime]
    settings: AuditStream
    alert: Callable[[str, int, datetime], None]  # sink, events behind, behind since: tell the alert channel
    attempts: dict[str, int] | None = None

    def start(self) -> None:
        self.store.ensure_streams([s.name for s in self.sinks], self.now())

    def round(self, worker: str) -> int:
        """Events sent in this round (0: nothing to do, or the sink failed and is retried later)."""
        return sum(self._one(sink, f"{worker}:{sink.name}") for sink in self.sinks)

    def _one(self, sink: Sink, worker: str) -> int:
        attempts = self.attempts if self.attempts is not None else {}
        self.attempts = attempts
        now = self.now()
        cursor = self.store.claim_stream(sink.name, worker, now)
        if cursor is None:
            return 0
        start = min(cursor.replay_from, cursor.delivered) if sink.fresh() else cursor.delivered
        batch = self.store.lines_after(start, self.settings.batch)
        fresh_events = [entry for entry in batch if entry[0] > cursor.delivered]
        if not fresh_events:
            self.store.advance_stream(sink.name, worker, Cursor(cursor.delivered, cursor.replay_from, None, False), now)
            return 0
        try:
            sink.send([line for _, _, line in batch])
        except SinkError:
            attempts[sink.name] = attempts.get(sink.name, 0) + 1
            since = cursor.lag_since or fresh_events[0][1]
            alerted = cursor.alerted
            if not alerted and now - fresh_events[0][1] >= self.settings.alert_after:
                self.alert(sink.name, len(fresh_events), fresh_events[0][1])  # once per outage
                alerted = True
            retry = now + backoff(attempts[sink.name])
            self.store.retry_stream(
                sink.name, worker, retry, Cursor(cursor.delivered, cursor.replay_from, since, alerted), attempts[sink.name]
            )
            return 0
        attempts[sink.name] = 0
        last = batch[-1][0]
        # Still alerted until it has caught up (a round with nothing new), so one outage is one alert.
        self.store.advance_stream(sink.name, worker, Cursor(last, cursor.delivered, None, cursor.alerted), now)
        return len(fresh_events)
