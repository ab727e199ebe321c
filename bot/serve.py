"""`jitbot serve`, `web` and `worker`: start the runtime and serve HTTP (and Socket Mode when configured)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.settings import Settings
from bot.web import MetricsApp, StatusApp, serve
from bot.wiring import build_runtime

log = logging.getLogger(__name__)


def run(settings: Settings, host: str, port: int, socket_mode: bool = False, role: str = "serve") -> int:
    runtime = build_runtime(settings, role=role)
    runtime.start()
    log.info("started", extra={"role": role})
    web = runtime.web
    # A worker takes no Slack traffic: its port serves /healthz and /metrics for the process manager and monitoring.
    front = web if role != "worker" else StatusApp(web.probes, web.metrics, web.metrics_token)
    server = serve(front, host, port)
    socket_mode = socket_mode and role != "worker"
    metrics_server = serve_metrics(runtime, settings, host)

    def stop(*_: Any) -> None:
        server.close()
        if metrics_server is not None:
            metrics_server.close()

    signal.signal(signal.SIGTERM, stop)
    handler: Any = None
    try:
        if socket_mode:
            # The websocket-client adapter, not Bolt's built-in one: after a reconnect (Slack asks for one every few
            # hours) the built-in client acks the next envelope only after ~3 s, as long as Slack's ack deadline;
            # this one acks in milliseconds (bench/socket_reconnect.py measures both).
            from slack_bolt.adapter.socket_mode.websocket_client import SocketModeHandler

            if settings.slack_app_token is None:
                raise SystemExit("SLACK_APP_TOKEN is missing: Socket Mode needs an app-level token starting with xapp-.")
            # The app's own client, so SLACK_API_URL applies to Socket Mode too.
            handler = SocketModeHandler(runtime.app, settings.slack_app_token.get_secret_value(), web_client=runtime.app.client)
            try:
                handler.connect()  # events arrive over the socket; HTTP keeps /healthz
            except SlackApiError as error:
                log.error("Socket Mode could not connect: %s; check SLACK_APP_TOKEN", error.response.get("error"))
                return 1
            log.info("connected by Socket Mode")
        log.info("serving", extra={"host": host, "port": port})
        server.run()
    except OSError:
        pass  # closed by SIGTERM
    finally:
        if handler is not None:
            handler.close()
        runtime.stop()
    return 0


def serve_metrics(runtime: Any, settings: Settings, host: str) -> Any:
    """With METRICS_PORT, `/metrics` on its own port (a firewall can then keep it internal), in a thread."""
    if settings.metrics_port is None:
        return None
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    server = serve(MetricsApp(runtime.web.metrics, token), host, settings.metrics_port, threads=2)
    threading.Thread(target=_run_quietly, args=(server,), name="jitbot-metrics", daemon=True).start()
    log.info("serving metrics", extra={"host": host, "port": settings.metrics_port})
    return server


def _run_quietly(server: Any) -> None:
    try:
        server.run()
    except OSError:
        pass  # closed on shutdown
