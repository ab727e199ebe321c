"""A real bot on a free local port: the full runtime behind waitress, in this process."""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from datetime import timedelta
from typing import Any

from bot.settings import Settings, load_settings
from bot.web import serve
from bot.wiring import Runtime, build_runtime


def free_port() -> int:
    """A port free now, chosen below the kernel's ephemeral range (32768 and up on Linux).

    A port the kernel hands out (bind to 0) is also what it gives the next outgoing connection of any process, so a
    child started on it a moment later could find it taken; ports below the range are only ever taken by a bind.
    """
    for _ in range(200):
        port = secrets.randbelow(32768 - 20000) + 20000
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBot:
    """Context manager: builds the runtime from settings, reconciles, and serves `POST /slack/events`."""

    def __init__(
        self,
        wrap_ttl: timedelta = timedelta(minutes=5),
        cli: str = "bao",
        role: str = "serve",
        port: int | None = None,
        **settings: Any,
    ):
        """`port`: the one to serve on (say one already written into the catalog's web_url), else a free one."""
        self.settings: Settings = load_settings(**settings)
        self.wrap_ttl, self.cli, self.role = wrap_ttl, cli, role
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime: Runtime | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalBot:
        self.runtime = build_runtime(self.settings, wrap_ttl=self.wrap_ttl, cli=self.cli, role=self.role)
        self.runtime.start()
        self._server = serve(self.runtime.web, "127.0.0.1", self.port)
        self._thread = threading.Thread(target=self._serve, args=(self._server,), name="jitbot-http", daemon=True)
        self._thread.start()
        return self

    def _serve(self, server: Any) -> None:
        try:
            server.run()
        except OSError:
            if self._server is not None:  # closed by stop(): the poll loop lost its sockets
                raise

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
        if self.runtime is not None:
            try:
                self.runtime.drain()
            except Exception:  # the database may be gone (a test cut it): what is queued stays queued
                logging.getLogger(__name__).warning("could not drain the outbox before stopping", exc_info=True)
            self.runtime.stop()
            self.runtime = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalBot:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
