"""`jitbot playground`: the demo's stage (local OpenBao, the Slack stand-in, the real bot) played from a browser page."""

from __future__ import annotations

import logging
import sys
import threading

from bot.logs import setup_logging
from devkit.demo import Stopped, _expected_noise, stops_on_signals


def main(port: int = 0) -> int:
    """The `jitbot playground` command (entry point group `jitbot.commands`): serve the page until Ctrl-C or SIGTERM.

    Either signal stops it at once, and every part it started (OpenBao above all) is stopped before it exits."""
    try:
        with stops_on_signals():
            return run(port)
    except Stopped as stop:
        print(f"jitbot playground: stopped by {stop.name}", file=sys.stderr)
        return 128 + stop.signum


def run(port: int) -> int:
    from devkit.playground.runner import Playground
    from devkit.playground.server import PlaygroundServer

    setup_logging(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_expected_noise)
    print("jitbot playground: setting the stage (OpenBao, vault sync, the Slack stand-in, the bot on SQLite)…", flush=True)
    playground = Playground()
    server: PlaygroundServer | None = None
    try:
        playground.start()
        server = PlaygroundServer(playground, port).start()
        print(f"jitbot playground: open {server.url}", flush=True)
        print("  (127.0.0.1 only; the ?s=… secret is this run's: keep it to yourself; Ctrl-C stops)", flush=True)
        threading.Event().wait()  # until a signal raises Stopped here
        return 0
    except OSError as error:
        print(f"jitbot playground: cannot serve on 127.0.0.1:{port}: {error}; pick another --port", file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(f"jitbot playground: {error}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        playground.stop()
