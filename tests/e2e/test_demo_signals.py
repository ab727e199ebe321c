"""`jitbot demo` stopped by SIGINT, SIGTERM or SIGKILL, as soon as OpenBao is up and during its SSH login, leaves
nothing it started running (real processes, /proc)."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPENBAO_UP = re.compile(r"OpenBao dev server \(in memory\) at http://127\.0\.0\.1:(\d+)")
Process = tuple[int, str]  # (pid, start time in clock ticks): a pid alone may be reused


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from "state" on; the name in (…) may hold spaces


def descendants(root: int) -> dict[Process, str]:
    """Every living process below `root`, with its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    found: dict[Process, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and (fields := _stat(pid)) is not None:
                found[(pid, fields[19])] = cmdline(pid)
                frontier.append(pid)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(process: Process) -> bool:
    fields = _stat(process[0])
    return fields is not None and fields[19] == process[1] and fields[0] not in ("Z", "X")  # a zombie has ended


def processes_naming(text: str) -> list[int]:
    """Every living process whose command line contains `text` (orphans included: they are no one's child)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and text in cmdline(int(entry.name)) and (fields := _stat(int(entry.name))) is not None:
            if alive((int(entry.name), fields[19])):
                found.append(int(entry.name))
    return found


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s: {what}"
        time.sleep(0.05)


def start_demo(ignore_sigint: bool) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    def preexec() -> None:
        if ignore_sigint:  # what a shell does to a background job (`jitbot demo &`)
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    demo = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout or []], daemon=True).start()
    return demo, lines


def openbao_port(demo: subprocess.Popen[str], lines: queue.Queue[str], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        assert demo.poll() is None, f"the demo ended early: {demo.stderr.read() if demo.stderr else ''}"
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("the demo never said its OpenBao was up") from None
        if match := OPENBAO_UP.search(line):
            return int(match.group(1))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "ignore_sigint", "exit_code"),
    [
        (signal.SIGINT, False, 130),
        (signal.SIGINT, True, 130),  # started as a background job: SIGINT inherited as ignored
        (signal.SIGTERM, False, 143),
        (signal.SIGKILL, False, -signal.SIGKILL),
    ],
    ids=["SIGINT", "SIGINT-background", "SIGTERM", "SIGKILL"],
)
def test_a_stopped_demo_leaves_nothing_running(signum, ignore_sigint, exit_code):
    demo, lines = start_demo(ignore_sigint)
    try:
        port = openbao_port(demo, lines)
        started = descendants(demo.pid)
        assert any("server -dev" in cmd and f"127.0.0.1:{port}" in cmd for cmd in started.values()), started
        assert listening(port)
        os.kill(demo.pid, signum)
        demo.wait(timeout=10)  # "at once": not the rest of the story
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    try:
        assert demo.returncode == exit_code
        wait_until(lambda: not any(alive(p) for p in started), 5, f"processes the demo started still run: {started}")
        wait_until(lambda: not processes_naming(f"-dev-listen-address=127.0.0.1:{port}"), 5, "an OpenBao of the demo runs")
        wait_until(lambda: not listening(port), 5, f"something still listens on the demo's OpenBao port {port}")
    finally:  # a failed run must not leave its orphans to the next one
        for process in started:
            if alive(process):
                os.kill(process[0], signal.SIGKILL)
    if signum != signal.SIGKILL:
        stderr = demo.stderr.read() if demo.stderr else ""
        assert f"jitbot demo: stopped by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr, stderr
        assert "Demo complete.\n" not in list(lines.queue)


SSHD_UP = re.compile(r"sshd -p (\d+)")


def wait_for_line(
    demo: subprocess.Popen[str], lines: queue.Queue[str], pattern: re.Pattern[str], timeout: float
) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        assert demo.poll() is None, f"the demo ended early: {demo.stderr.read() if demo.stderr else ''}"
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"the demo never printed {pattern.pattern!r}") from None
        if match := pattern.search(line):
            return match


def find(root: int, predicate, timeout: float, what: str) -> Process:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        for process, cmd in descendants(root).items():
            if predicate(cmd):
                return process
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_demo_stopped_during_its_ssh_login_leaves_nothing_running(signum):
    """Killed while its `ssh` client waits on its sshd (frozen with SIGSTOP, as a hung host would be): the sshd, the
    `ssh` client, OpenBao, and the in-process bot and stand-in all end with the demo."""
    demo, lines = start_demo(ignore_sigint=False)
    started: dict[Process, str] = {}
    try:
        bao_port = openbao_port(demo, lines)
        ssh_port = int(wait_for_line(demo, lines, SSHD_UP, timeout=240).group(1))
        sshd = find(demo.pid, lambda cmd: "sshd_config [listener]" in cmd, 10, "the demo's listening sshd")
        os.kill(sshd[0], signal.SIGSTOP)  # the host hangs: the demo's `ssh` login now waits for its banner
        find(demo.pid, lambda cmd: cmd.startswith("ssh ") and "CertificateFile=" in cmd, 60, "the demo's ssh login")
        started = descendants(demo.pid)
        commands = list(started.values())
        assert any("server -dev" in cmd for cmd in commands) and any(cmd.startswith("ssh ") for cmd in commands), commands
        os.kill(demo.pid, signum)
        demo.wait(timeout=10)  # at once, though its sshd is frozen and its ssh client is mid-login
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    try:
        assert demo.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum)
        survivors = lambda: {p: cmd for p, cmd in started.items() if alive(p)}  # noqa: E731
        wait_until(lambda: not survivors(), 5, f"processes the demo started still run: {survivors()}")
        wait_until(lambda: not processes_naming(f"-dev-listen-address=127.0.0.1:{bao_port}"), 5, "an OpenBao of the demo runs")
        wait_until(lambda: not listening(bao_port) and not listening(ssh_port), 5, "something still listens on the demo's ports")
    finally:  # a failed run must not leave its orphans (a stopped sshd among them) to the next one
        for process in started:
            if alive(process):
                os.kill(process[0], signal.SIGKILL)
    if signum != signal.SIGKILL:
        stderr = demo.stderr.read() if demo.stderr else ""
        assert f"jitbot demo: stopped by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr, stderr
