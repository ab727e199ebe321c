"""The audit stream's collectors: syslog over TCP or TLS (RFC 5424, octet counting) and an HMAC-signed webhook."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import socket
import ssl
import struct
import termios
import time
from urllib.parse import urlsplit

import requests

from grants.audit_stream import SinkError, syslog_frame

# How long a collector may take to read what was written before the batch counts as not taken.
TAKE_TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Jitbot-Signature"  # `sha256=<hex HMAC of the body>` with JITBOT_AUDIT_WEBHOOK_SECRET


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
