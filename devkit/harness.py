"""A real bot on a free local port: the full runtime behind waitress, in this process."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import timedelta
from typing import Any

from bot.settings import Settings, load_settings
from bot.web import serve
from bot.wiring import Runtime, build_runtime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBot:
    """Context manager: builds the runtime from settings, reconciles, and serves `POST /slack/events`."""

    def __init__(
        self, wrap_ttl: timedelta = timedelta(minutes=5), cli: str = "bao", worker_process: bool = False, **settings: Any
    ):
        self.settings: Settings = load_settings(**settings)
        self.wrap_ttl, self.cli, self.worker_process = wrap_ttl, cli, worker_process
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime: Runtime | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalBot:
        self.runtime = build_runtime(self.settings, wrap_ttl=self.wrap_ttl, cli=self.cli, worker_process=self.worker_process)
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
                self.runtime.notifier.drain()
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
