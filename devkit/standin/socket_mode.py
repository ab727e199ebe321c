"""Slack's Socket Mode over a real WebSocket: apps.connections.open hands out a ws:// URL, the server says `hello`,
pushes envelopes (slash_commands, interactive, events_api) and takes the client's acks; `disconnect` asks for a refresh.

Started only when the stand-in has an app token: `websockets` comes with the dev extras, the demo does not need it."""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from devkit.standin.state import SlackError, StandInState

if TYPE_CHECKING:
    from websockets.sync.server import Server, ServerConnection

# What Slack sets accepts_response_payload for: the ack's payload is the answer Slack shows or acts on.
_ANSWERED = frozenset({"view_submission", "block_suggestion"})


@dataclass
class _Link:
    """One Socket Mode connection: its number (1, 2, … in order of hello) and whether it was asked to refresh."""

    number: int
    connection: ServerConnection
    retiring: bool = False
    send_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    connection: int  # the link it came over
    at: float  # time.monotonic() when it arrived


class SocketModeSide(StandInState):
    """The WebSocket end of Socket Mode; tests push envelopes with send_envelope() and read acks with wait_for_ack()."""

    _ws: Server | None = None
    _ws_thread: threading.Thread | None = None
    refresh_grace = 10.0  # seconds a refreshed connection stays open after `disconnect`, about what Slack allows

    def _reset_socket_mode(self) -> None:
        with self._lock:
            self._tickets: set[str] = set()
            self._links: list[_Link] = []
            self._hellos = 0
            self._acks: dict[str, Ack] = {}
            self._sent: dict[str, dict[str, Any]] = {}
            self._sent_over: dict[str, int] = {}  # envelope_id → the link it went out on last
            self._undelivered: list[str] = []  # envelopes whose link closed unacked while no other link was open

    # ------------------------------------------------------------------ lifecycle

    def _start_socket_mode(self) -> None:
        from websockets.sync.server import serve  # dev extras only: imported when Socket Mode is wanted

        if self._ws is None:
            self._reset_socket_mode()
            self._ws = serve(self._serve_link, self._host, 0, compression=None)
            self._ws_thread = threading.Thread(target=self._ws.serve_forever, name="slack-standin-ws", daemon=True)
            self._ws_thread.start()

    def _stop_socket_mode(self) -> None:
        if self._ws is not None:
            server, self._ws = self._ws, None
            for link in self._live_links():
                link.connection.close()
            server.shutdown()
            if self._ws_thread is not None:
                self._ws_thread.join(timeout=5)
            self._ws_thread = None

    @property
    def socket_url(self) -> str:
        """ws://127.0.0.1:PORT/link/ (without a ticket: apps.connections.open adds one)."""
        if self._ws is None:
            raise RuntimeError("Socket Mode is off: give the stand-in an app_token")
        port = self._ws.socket.getsockname()[1]
        return f"ws://{self._host}:{port}/link/"

    # ------------------------------------------------------------------ the Web API method

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._ws is None:
            raise SlackError("invalid_auth")
        ticket = secrets.token_hex(12)
        self._tickets.add(ticket)  # single use, like Slack's: a second connect needs a new URL
        return {"url": f"{self.socket_url}?ticket={ticket}&app_id={self.app_id}"}

    # ------------------------------------------------------------------ one connection

    def _serve_link(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        request = connection.request
        ticket = parse_qs(urlsplit(request.path if request else "").query).get("ticket", [""])[0]
        with self._changed:
            if ticket not in self._tickets:
                connection.close(code=4001, reason="invalid ticket")  # an unknown or reused URL is refused
                return
            self._tickets.discard(ticket)
            self._hellos += 1
            link = _Link(self._hellos, connection)
            self._links.append(link)
        hello = {
            "type": "hello",
            "num_connections": len(self._live_links()),
            "debug_info": {"host": "slack-standin", "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        self._send(link, hello)
        with self._lock:
            waiting, self._undelivered = self._undelivered, []
        for envelope_id in waiting:
            self._deliver(envelope_id, retry=True)
        self._notify()
        try:
            for raw in connection:
                self._on_client_message(link, raw)
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                if link in self._links:
                    self._links.remove(link)
                unacked = [e for e, n in self._sent_over.items() if n == link.number and e not in self._acks]
                self._changed.notify_all()
            for envelope_id in unacked:  # as Slack does: an envelope not acked on a closed connection is sent again
                self._deliver(envelope_id, retry=True)

    def _on_client_message(self, link: _Link, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not envelope_id:
            return
        with self._changed:
            if envelope_id in self._sent and envelope_id not in self._acks:
                payload = message.get("payload")
                self._acks[envelope_id] = Ack(
                    envelope_id, payload if isinstance(payload, dict) else None, link.number, time.monotonic()
                )
            self._changed.notify_all()

    def _send(self, link: _Link, message: dict[str, Any]) -> None:
        with link.send_lock:
            link.connection.send(json.dumps(message))

    def _live_links(self) -> list[_Link]:
        with self._lock:
            return list(self._links)

    # ------------------------------------------------------------------ what tests do

    @property
    def socket_connections(self) -> int:
        """How many Socket Mode connections have been greeted with `hello` so far."""
        with self._lock:
            return self._hellos

    def wait_for_connection(self, number: int = 1, timeout: float = 10.0) -> None:
        """Wait until the `number`-th connection is open (1: the first; after a refresh, the next one)."""
        self.wait_for(lambda: any(link.number >= number for link in self._links), timeout, f"Socket Mode connection #{number}")

    def send_envelope(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool | None = None) -> str:
        """Push one envelope (`slash_commands`, `interactive` or `events_api`) over the newest connection; its envelope_id."""
        if not self._live_links():
            raise AssertionError(self.dump("no Socket Mode connection to send an envelope over"))
        if accepts_response_payload is None:
            accepts_response_payload = kind == "slash_commands" or payload.get("type") in _ANSWERED
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        with self._lock:
            self._sent[envelope_id] = envelope
        self._deliver(envelope_id, retry=False)
        return envelope_id

    def _deliver(self, envelope_id: str, *, retry: bool) -> None:
        """Send (or send again, retry_attempt + 1) over the newest open link; kept for the next hello when none is."""
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            links = [link for link in self._links if not link.retiring] or list(self._links)
            envelope = self._sent[envelope_id]
            if retry:
                envelope["retry_attempt"] += 1
                envelope["retry_reason"] = "timeout"
            if not links:
                self._undelivered.append(envelope_id)
                return
            self._sent_over[envelope_id] = links[-1].number
            message = copy.deepcopy(envelope)
        try:
            self._send(links[-1], message)
        except ConnectionClosed:
            pass  # that link's clean-up sends it again

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        """The client's ack of this envelope, once it came (AssertionError after `timeout`)."""
        return self.wait_for(lambda: self._acks.get(envelope_id), timeout, f"ack of envelope {envelope_id}")  # type: ignore[no-any-return]

    def request_refresh(self) -> int:
        """Send `disconnect` (reason refresh_requested) on the newest connection, as Slack does every few hours.

        The client should open a new connection; as in Slack, the old one stays open for `refresh_grace` seconds and
        is closed then. Envelopes always go over the newest connection. Returns the refreshed link's number."""
        links = self._live_links()
        if not links:
            raise AssertionError(self.dump("no Socket Mode connection to refresh"))
        link = links[-1]
        with self._lock:
            link.retiring = True
        self._send(link, {"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "slack-standin"}})
        closing = threading.Timer(self.refresh_grace, link.connection.close)
        closing.daemon = True
        closing.start()
        return link.number
