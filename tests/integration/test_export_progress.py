"""`jitbot audit export -o FILE` shows progress on a terminal's stderr, says nothing more in a pipe, and writes the same bytes."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from grants.domain import AuditEvent
from tests.conftest import ROOT
from tests.databases import fresh_store

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
EVENTS = 3000


@pytest.fixture(params=["sqlite", "postgresql"])
def trail_url(request, tmp_path):
    with fresh_store(request.param, tmp_path) as store:
        for i in range(EVENTS):
            store.record(AuditEvent(event="requested", at=T0 + timedelta(seconds=i), actor="U0USER001", request_id=f"JIT-{i}",
                                    scope="payments-read", subject="U0USER001", detail={"reason": f"INC-{i}\nline two"}))  # fmt: skip
        store.close()
        yield store.engine.url.render_as_string(hide_password=False)


def export(url: str, target, stderr_to_terminal: bool, fmt: str = "csv") -> tuple[int, str]:
    """Run the real command line; its stderr a pseudo-terminal or a pipe. Returns (exit code, what stderr showed)."""
    command = [sys.executable, "-m", "bot.cli", "audit", "export", "--format", fmt, "-o", str(target)]
    env = {**os.environ, "DATABASE_URL": url}
    if not stderr_to_terminal:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stderr
    primary, secondary = pty.openpty()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    shown = b""
    deadline = time.monotonic() + 60
    while True:  # read until the child closes the terminal (EIO on Linux)
        assert time.monotonic() < deadline, "the export did not finish"
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    return process.wait(timeout=30), shown.decode()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_progress_on_a_terminal_silence_in_a_pipe_same_bytes(trail_url, tmp_path, fmt):
    code, on_terminal = export(trail_url, tmp_path / "a", stderr_to_terminal=True, fmt=fmt)
    assert code == 0, on_terminal
    final = re.search(r"exporting: ([\d,]+) rows of ([\d,]+), ([\d,]+) rows/s, done in \d+:\d\d", on_terminal)
    assert final and final.group(1) == final.group(2) == f"{EVENTS:,}", on_terminal
    assert re.search(r"rows/s, \d+:\d\d left|done in", on_terminal)

    code, in_pipe = export(trail_url, tmp_path / "b", stderr_to_terminal=False, fmt=fmt)
    assert code == 0 and "exporting:" not in in_pipe and "\r" not in in_pipe
    assert in_pipe.strip() == f"exported {EVENTS + 1} events"  # the first export's own `exported` event, one more
    first, second = (tmp_path / "a").read_bytes(), (tmp_path / "b").read_bytes()
    assert second.startswith(first) and second[len(first) :].count(b"\n") == 1  # byte for byte, plus that one event
