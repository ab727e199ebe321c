"""An HTTP load generator in its own process: N clients POST pre-signed bodies and time each answer.

Closed loop by default (each client sends its next request when answered). With "rate" in the spec it is an open
loop: request k is sent at start + k/rate whatever the answers (up to "concurrency" threads in flight), and its
latency counts from that scheduled moment, so a stalled server is not hidden by a slowed sender.

`python -m bench.loadgen SPEC.json` where SPEC is {"url", "concurrency", "timeout", "requests": [[kind, body, headers], ...]};
prints {"results": [[kind, milliseconds, status], ...], "wall": seconds}. Status 0 means the request failed outright.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(spec["url"])
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    items: list[list[Any]] = spec["requests"]
    timeout = float(spec.get("timeout", 10))
    results: list[list[Any] | None] = [None] * len(items)
    cursor = iter(range(len(items)))
    lock = threading.Lock()
    concurrency = max(1, min(int(spec["concurrency"]), len(items)))
    barrier = threading.Barrier(concurrency + 1)

    rate = float(spec.get("rate") or 0)
    began = [0.0]

    def client() -> None:
        barrier.wait()
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            scheduled = None
            if rate:
                scheduled = began[0] + index / rate
                time.sleep(max(0.0, scheduled - time.perf_counter()))
            kind, body, headers = items[index]
            data = body.encode("utf-8")
            status = 0
            started = scheduled if scheduled is not None else time.perf_counter()
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                connection.request("POST", path, body=data, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
            finally:
                connection.close()
            results[index] = [kind, (time.perf_counter() - started) * 1000.0, status]

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    began[0] = time.perf_counter() + 0.05
    barrier.wait()
    started = time.perf_counter()
    deadline = time.monotonic() + timeout * (len(items) / concurrency + 2)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    wall = time.perf_counter() - started
    return {"results": [r for r in results if r is not None], "wall": wall, "missing": sum(r is None for r in results)}


def drive(spec: dict[str, Any], spec_path: Path, timeout: float = 300.0) -> dict[str, Any]:
    """Run the load generator as a child process and return its report."""
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", str(spec_path)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


if __name__ == "__main__":
    print(json.dumps(_run(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))))
