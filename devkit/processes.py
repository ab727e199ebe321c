"""`jitbot serve`, `web` or `worker` as a real child process, for kill, stop-and-continue, restart and log tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devkit.children import die_with_parent
from devkit.harness import free_port

ROOT = Path(__file__).resolve().parent.parent  # the checkout: `python -m bot.cli` runs from here


class ServeProcess:
    def __init__(
        self, env: dict[str, str], log_path: Path, module: str = "bot.cli", extra: list[str] | None = None, role: str = "serve"
    ):
        self.env = {**os.environ, **env}
        self.module = module  # `tests.crash_serve` for a bot that dies at a chosen store write
        self.log_path = log_path
        self.extra = extra or []  # more options of the command
        self.role = role  # the command: serve, web or worker
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> ServeProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, self.role, "--host", "127.0.0.1", "--port", str(self.port), *self.extra],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),  # a killed test or soak leaves no bot behind
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310 - http://127.0.0.1
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"jitbot {self.role} did not become healthy:\n{self.log_path.read_text()}")

    def health(self) -> tuple[int, dict[str, str]]:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:  # noqa: S310 - http://127.0.0.1
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pause(self) -> None:
        """SIGSTOP: the process hangs with its sockets open and its claims held, like a host that vanished."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, timers lost, exactly like a crashed pod."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def died(self, timeout: float = 30) -> int:
        """Wait for the process to end by itself (a crash under test); its return code (-9: SIGKILL)."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.resume()  # a paused process cannot act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
