"""A local non-dev OpenBao server (raft storage, initialised with one key share) that survives a restart."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from devkit.children import die_with_parent
from devkit.openbao import _DIRECT, _port_free, find_bao, free_port_pair

_LIVE: set[OpenBaoServer] = set()


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


atexit.register(_stop_all)


class OpenBaoServer:
    """`bao server -config` on 127.0.0.1 (no TLS) with integrated (raft) storage under `directory`; a context manager.

    The first `start()` runs `bao operator init -key-shares=1 -key-threshold=1` and keeps the unseal key and the
    root token (in `directory`, 0600). `restart()` sends SIGTERM, starts again on the same port and unseals with
    the saved key: everything written before (policies, tokens, secrets) is still there. The child dies with the
    thread that started it (devkit/children.py): call `start()`/`restart()` from one that lives as long as it should.
    """

    def __init__(self, directory: Path, port: int | None = None, binary: str | None = None):
        self.directory = directory
        self.port = port if port is not None else free_port_pair()
        self.binary = binary or find_bao()
        self.log_path = directory / "openbao.log"
        self.config_path = directory / "openbao.hcl"
        self._keys_path = directory / "openbao-init.json"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.root_token = ""
        self._unseal_key = ""

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _env(self) -> dict[str, str]:
        # Our own settings only: a VAULT_*/BAO_* variable of the caller must not point the CLI elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        return env | {"BAO_ADDR": self.addr}

    def start(self, timeout: float = 30.0) -> OpenBaoServer:
        """Start (initialising on the first start), unseal, and wait until the root token answers."""
        if self.running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (_port_free(self.port) and _port_free(self.port + 1)):
            raise RuntimeError(f"OpenBao server cannot start on {self.addr}: port {self.port} or {self.port + 1} taken")
        storage = self.directory / "storage"
        storage.mkdir(exist_ok=True)
        self.config_path.write_text(  # OpenBao has no "file" storage: integrated (raft) storage, one node
            f'storage "raft" {{\n  path = "{storage}"\n  node_id = "devkit"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.port + 1}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\ncluster_addr = "http://127.0.0.1:{self.port + 1}"\nui = false\n'
        )
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # dies with its thread even on SIGKILL: no orphan holding the port
            [self.binary, "server", f"-config={self.config_path}"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env(),
            preexec_fn=die_with_parent(),
        )
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        status = self._wait(lambda s: s is not None, deadline, "listening")
        if not status["initialized"]:
            self._init()
        elif not self._unseal_key:
            saved = json.loads(self._keys_path.read_text())
            self._unseal_key, self.root_token = saved["unseal_keys_b64"][0], saved["root_token"]
        if status["sealed"] or not status["initialized"]:
            self._call("PUT", "/v1/sys/unseal", {"key": self._unseal_key})
        self._wait(lambda s: s is not None and not s["sealed"], deadline, "unsealed")
        while not self._answers_root():  # unsealed, and the token store is up (the first active moment may refuse)
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"OpenBao at {self.addr} refuses its root token:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def _init(self) -> None:
        done = subprocess.run(
            [self.binary, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json"],
            env=self._env(),
            capture_output=True,
            timeout=30,
            check=False,
            preexec_fn=die_with_parent(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"bao operator init failed: {done.stderr.decode(errors='replace')}")
        saved = json.loads(done.stdout)
        descriptor = os.open(self._keys_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as keys:
            json.dump(saved, keys)
        self._unseal_key, self.root_token = saved["unseal_keys_b64"][0], saved["root_token"]

    def _wait(self, ready: Any, deadline: float, what: str) -> dict[str, Any]:
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"OpenBao server at {self.addr} ended before {what}:\n{self.log_tail()}")
            status = self._seal_status()
            if ready(status):
                assert status is not None
                return status
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"OpenBao server at {self.addr} not {what} after the timeout:\n{self.log_tail()}")

    def _seal_status(self) -> dict[str, Any] | None:
        try:
            return self._call("GET", "/v1/sys/seal-status")
        except (urllib.error.URLError, OSError):
            return None

    def _answers_root(self) -> bool:
        try:
            self._call("GET", "/v1/auth/token/lookup-self", token=self.root_token)
        except (urllib.error.URLError, OSError):
            return False
        return True

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
        headers = {"X-Vault-Token": token} if token else {}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.addr + path, data=data, headers=headers, method=method)  # noqa: S310 - http://127.0.0.1
        with _DIRECT.open(request, timeout=2) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it will not go); storage stays. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE.discard(self)

    def restart(self, timeout: float = 30.0, down: float = 0.0) -> OpenBaoServer:
        """Stop (SIGTERM), stay down `down` seconds, start again on the same port, unsealed with the saved key."""
        self.stop()
        time.sleep(down)
        deadline = time.monotonic() + 10
        while not (_port_free(self.port) and _port_free(self.port + 1)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.start(timeout)

    def close(self) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> OpenBaoServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenBaoServer(addr={self.addr!r}, running={self.running})"
