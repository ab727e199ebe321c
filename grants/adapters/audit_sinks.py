"""The audit stream's collectors: syslog over TCP, TLS or RELP (RFC 5424) and an HMAC-signed webhook."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import re
import socket
import ssl
import struct
import termios
import time
from urllib.parse import urlsplit

import requests

from grants.audit_stream import SinkError, syslog_frame, syslog_message

# How long a collector may take to read what was written before the batch counts as not taken.
TAKE_TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Jitbot-Signature"  # `sha256=<hex HMAC of the body>` with JITBOT_AUDIT_WEBHOOK_SECRET


_RELP_HEADER = re.compile(rb"(\d{1,9}) ([a-z]{1,32}) (\d{1,9})([ \n])")
RELP_WINDOW = 128  # messages in flight before their acknowledgements are read (librelp's default window)


class SyslogSink:
    """One connection to the collector, opened on first use and again after any failure."""

    name = "syslog"

    def __init__(self, url: str, ca_file: str = "", hostname: str | None = None, timeout: float = TAKE_TIMEOUT):
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None  # the catalog validated the URL
        self.host, self.port, self.tls, self.timeout = parts.hostname, parts.port, parts.scheme == "tls", timeout
        self.hostname = hostname or socket.gethostname()
        self._context: ssl.SSLContext | None = None
        if self.tls:
            self._context = ssl.create_default_context(cafile=ca_file or None)  # the collector's name and chain checked
        self._sock: socket.socket | None = None

    def fresh(self) -> bool:
        return self._sock is None

    def send(self, lines: list[str]) -> None:
        payload = b"".join(syslog_frame(line, self.hostname) for line in lines)
        try:
            sock = self._connect()
            sock.sendall(payload)
            self._wait_taken(sock)
        except (OSError, SinkError) as error:
            self.close()
            raise SinkError(f"syslog {self.host}:{self.port}: {type(error).__name__}") from None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._sock = self._context.wrap_socket(raw, server_hostname=self.host) if self._context else raw
        return self._sock

    def _wait_taken(self, sock: socket.socket) -> None:
        """Plain TCP syslog has no acknowledgement: wait until the collector's TCP stack acknowledged every byte
        (the send queue is empty), so a collector that stopped reading is a failure, not a silent loss."""
        deadline = time.monotonic() + self.timeout
        while True:
            unacked = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
            if unacked == 0:
                return
            if time.monotonic() > deadline:
                raise SinkError("the collector did not take the batch")
            time.sleep(0.005)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None


class RelpSink(SyslogSink):
    """RELP (rsyslog's Reliable Event Logging Protocol): every message is acknowledged by the collector's
    application once it holds it, so a collector that dies with bytes unread in its socket loses nothing of ours:
    the batch was not acknowledged and is sent again (plain TCP can only know the peer's kernel took the bytes)."""

    def __init__(self, url: str, ca_file: str = "", hostname: str | None = None, timeout: float = TAKE_TIMEOUT):
        super().__init__(url, ca_file, hostname, timeout)
        self._txnr = 0
        self._buffer = b""

    def fresh(self) -> bool:
        return False  # every message was acknowledged on its own: nothing before the cursor needs sending again

    def send(self, lines: list[str]) -> None:
        try:
            sock = self._connect()
            for start in range(0, len(lines), RELP_WINDOW):
                window = [syslog_message(line, self.hostname) for line in lines[start : start + RELP_WINDOW]]
                sent = [self._next_txnr() for _ in window]
                sock.sendall(b"".join(self._frame(txnr, b"syslog", message) for txnr, message in zip(sent, window, strict=True)))
                for txnr in sent:
                    self._expect_ok(sock, txnr)
        except (OSError, SinkError) as error:
            self.close()
            raise SinkError(
                f"relp {self.host}:{self.port}: {error if isinstance(error, SinkError) else type(error).__name__}"
            ) from None

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = super()._connect()
        sock.settimeout(self.timeout)
        self._txnr, self._buffer = 0, b""
        txnr = self._next_txnr()
        sock.sendall(self._frame(txnr, b"open", b"relp_version=0\nrelp_software=jitbot\ncommands=syslog"))
        self._expect_ok(sock, txnr)
        return sock

    def _next_txnr(self) -> int:
        self._txnr = self._txnr % 999_999_999 + 1  # RELP's transaction numbers wrap from 999999999 to 1
        return self._txnr

    @staticmethod
    def _frame(txnr: int, command: bytes, data: bytes) -> bytes:
        return b"%d %s %d %s\n" % (txnr, command, len(data), data) if data else b"%d %s 0\n" % (txnr, command)

    def _expect_ok(self, sock: socket.socket, txnr: int) -> None:
        got, command, data = self._read_frame(sock)
        if command == b"serverclose":
            raise SinkError("the collector closed the session")
        if command != b"rsp" or got != txnr:
            raise SinkError(f"unexpected RELP frame {got} {command!r}")
        if not data.startswith(b"200"):
            raise SinkError(f"the collector answered {data[:40]!r}")

    def _read_frame(self, sock: socket.socket) -> tuple[int, bytes, bytes]:
        while (frame := self._parse_frame()) is None:
            chunk = sock.recv(65536)
            if not chunk:
                raise SinkError("the collector closed the connection")
            self._buffer += chunk
        return frame

    def _parse_frame(self) -> tuple[int, bytes, bytes] | None:
        """TXNR SP COMMAND SP DATALEN [SP DATA] LF from the buffer, or None while it is incomplete."""
        header = _RELP_HEADER.match(self._buffer)
        if header is None:
            if len(self._buffer) > 64:
                raise SinkError("malformed RELP frame")
            return None
        txnr, command, size, start = int(header[1]), header[2], int(header[3]), header.end()
        if header[4] == b"\n":
            if size:
                raise SinkError("malformed RELP frame")
            self._buffer = self._buffer[start:]
            return txnr, command, b""
        if len(self._buffer) < start + size + 1:
            return None
        if self._buffer[start + size : start + size + 1] != b"\n":
            raise SinkError("malformed RELP frame")
        data, self._buffer = self._buffer[start : start + size], self._buffer[start + size + 1 :]
        return txnr, command, data


class WebhookSink:
    """One POST per batch: the export's JSONL lines as the body, signed with HMAC-SHA256; 2xx means taken."""

    name = "webhook"

    def __init__(self, url: str, secret: str, ca_file: str = "", timeout: float = TAKE_TIMEOUT):
        self.url, self._secret, self.timeout = url, secret.encode("utf-8"), timeout
        self._verify: str | bool = ca_file or True
        self._session = requests.Session()

    def fresh(self) -> bool:
        return False  # every POST is acknowledged on its own

    def send(self, lines: list[str]) -> None:
        body = "".join(lines).encode("utf-8")
        signature = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/x-ndjson", SIGNATURE_HEADER: f"sha256={signature}"}
        try:
            answer = self._session.post(self.url, data=body, headers=headers, timeout=self.timeout, verify=self._verify)
        except requests.RequestException as error:
            raise SinkError(f"webhook: {type(error).__name__}") from None
        if not 200 <= answer.status_code < 300:
            raise SinkError(f"webhook answered {answer.status_code}")

    def close(self) -> None:
        self._session.close()
