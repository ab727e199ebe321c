"""The worker process beside `jitbot serve --worker-process`: spawned and watched here, tasks and outbox kicks sent to it.

The HTTP process acks; the worker spends its own interpreter on what comes after (Vault, the database, Slack,
the timers), so a burst of post-ack work never holds an ack behind Python's one lock. The two talk over a socket
pair, one JSON object per line: tasks and kicks one way, the worker's role and scheduler state the other.
Nothing on it is ever written down; the worker dies with the socket, so it never outlives the HTTP process.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.settings import Settings, load_settings
from bot.tasks import Task, decode

log = logging.getLogger(__name__)
HEARTBEAT = 1.0  # seconds between the worker's reports
STALE = 5.0  # a worker silent this long counts as down in /healthz
BACKLOG = 1000  # tasks and kicks waiting for the socket; past this a task runs in the HTTP process instead
WORKER_NICENESS = 10


class WorkerLink:
    """The HTTP process's end: starts the worker, restarts it if it dies, forwards tasks and kicks."""

    def __init__(self, settings: Settings, wrap_ttl: timedelta, cli: str) -> None:
        self._hello = {"settings": _plain(settings), "wrap_ttl": wrap_ttl.total_seconds(), "cli": cli}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._report: dict[str, Any] = {}
        self._heard = 0.0
        # Acks never wait on the socket: a sender thread drains this queue; a full queue sends the task back.
        self._outgoing: queue.Queue[bytes] = queue.Queue(BACKLOG)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._spawn()
        for target, name in ((self._listen, "worker-link"), (self._forward, "worker-link-send")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "bot.cli", "worker", "--link-fd", str(theirs.fileno())]
        child = subprocess.Popen(command, pass_fds=(theirs.fileno(),))
        theirs.close()
        # The settings (secrets included) go over the private socket, never on a command line or into the environment.
        ours.sendall(json.dumps(self._hello).encode() + b"\n")
        with self._lock:
            if self._stopping.is_set():  # stop() ran meanwhile: this worker must not outlive it
                _close(ours)
                child.kill()
                child.wait()
                return
            self._sock, self._child = ours, child
        log.info("worker process started", extra={"pid": child.pid})

    def _listen(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                sock = self._sock
            if sock is None:  # the worker is gone: a new one takes over (tasks run in this process meanwhile)
                try:
                    self._spawn()
                except OSError:
                    log.exception("could not start the worker process; trying again in a second")
                    self._stopping.wait(1.0)
                continue
            for line in _lines(sock):
                try:
                    self._report, self._heard = json.loads(line), time.monotonic()
                except ValueError:
                    log.error("unreadable report from the worker process")
            if self._stopping.is_set():
                return
            # Crashed or killed. What it had taken and not finished is lost as in any crash: approvals are finished by
            # reconcile, a click that changed nothing can be clicked again, and the outbox still holds every message.
            with self._lock:
                self._sock = None
            _close(sock)
            log.error("the worker process exited (%s); starting a new one", self._child.poll() if self._child else None)
            self._stopping.wait(1.0)

    def _forward(self) -> None:
        while not self._stopping.is_set():
            data = self._outgoing.get()
            with self._lock:
                sock = self._sock
            if sock is None:
                continue  # no worker this moment: a kick is moot (it polls when it starts), a task was lost with it
            try:
                sock.sendall(data)
            except OSError:
                pass  # the worker died: _listen starts another

    def send(self, task: Task) -> bool:
        """Hand `task` to the worker; False when it cannot take it now (the caller runs it instead)."""
        with self._lock:
            if self._sock is None:
                return False
        try:
            self._outgoing.put_nowait(task.encode())
        except queue.Full:
            return False
        return True

    def kick(self) -> None:
        """A commit wrote notices: the worker's delivery threads wake at once instead of at their next poll."""
        try:
            self._outgoing.put_nowait(b'{"kick":1}\n')
        except queue.Full:
            pass  # the worker is busy anyway, and polls

    def _fresh(self) -> bool:
        return time.monotonic() - self._heard < STALE

    def healthy(self) -> bool:
        """The worker reported within STALE seconds that its scheduler runs (a dead or hung worker is down)."""
        return bool(self._report.get("scheduler")) and self._fresh()

    def role(self) -> str:
        if not self._report:
            return "starting"
        return str(self._report.get("role")) if self._fresh() else "unknown (worker silent)"

    def stop(self, timeout: float = 15) -> None:
        """Close the socket: the worker finishes what it holds and exits (killed if it takes longer than `timeout`)."""
        self._stopping.set()
        try:
            self._outgoing.put_nowait(b"")  # wakes the sender thread so it sees the stop (a full queue wakes it anyway)
        except queue.Full:
            pass
        with self._lock:
            sock, child, self._sock = self._sock, self._child, None
        if sock is not None:
            _close(sock)
        if child is not None:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def run_worker(link_fd: int) -> int:
    """`jitbot worker --link-fd N`: the worker's end. Runs the background work until the socket closes."""
    from bot.wiring import build_runtime

    # Below the HTTP process in the CPU queue: an ack has 3 s, what follows it can wait a few milliseconds for a core.
    os.nice(WORKER_NICENESS)
    sock = socket.socket(fileno=link_fd)
    lines = _lines(sock)
    hello = json.loads(next(lines))
    settings = load_settings(**hello["settings"])
    runtime = build_runtime(settings, wrap_ttl=timedelta(seconds=hello["wrap_ttl"]), cli=hello["cli"])
    # Ctrl-C reaches the whole process group, SIGTERM may come from a supervisor: both end the loop below cleanly.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: _close(sock))
    runtime.start()
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(HEARTBEAT):
            state = {"role": runtime.role(), "scheduler": runtime.timer.healthy()}
            try:
                sock.sendall(json.dumps(state).encode() + b"\n")
            except OSError:
                return

    threading.Thread(target=report, name="worker-report", daemon=True).start()
    try:
        for line in lines:
            message = json.loads(line)
            if "kick" in message:
                if runtime.outbox is not None:
                    runtime.outbox.kick()
            else:
                runtime.ctx.later(decode(message))
    finally:
        stop.set()
        runtime.stop()  # finishes the tasks it took; the outbox keeps what it did not send
        _close(sock)
    return 0


def _lines(sock: socket.socket) -> Any:
    """The lines read from `sock` until it closes (EOF or error)."""
    try:
        with sock.makefile("rb") as stream:
            yield from stream
    except (OSError, ValueError):
        return


def _close(sock: socket.socket) -> None:
    """Shut the socket down first: a reader blocked on it (through makefile) sees EOF at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the other end
    sock.close()


def _plain(settings: Settings) -> dict[str, Any]:
    """Settings as JSON: secrets revealed (for the worker's private socket only), paths as text."""
    values = settings.model_dump(exclude_unset=False)
    return {
        name: value.get_secret_value() if isinstance(value, SecretStr) else str(value) if isinstance(value, Path) else value
        for name, value in values.items()
        if value is not None
    }
