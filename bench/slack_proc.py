"""The Slack stand-in in a child process, so its work never shares the bot's GIL; it reports credential DMs.

Child: `python -m bench.slack_proc BOT_TOKEN` prints {"url": ...}, then one {"credential": request_id, "at": t} line per
credential DM it receives (t is time.monotonic(), a system-wide clock on Linux), and runs until stdin closes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from typing import Any

from devkit.standin import SlackStandIn

_CREDENTIAL = re.compile(r":key: ([A-Za-z0-9_-]+): .*unwrap ", re.DOTALL)


class _ReportingStandIn(SlackStandIn):
    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        result = super()._chat_post_message(params)
        match = _CREDENTIAL.match(str(params.get("text") or ""))
        if match:
            print(json.dumps({"credential": match.group(1), "at": time.monotonic()}), flush=True)
        return result


def main(token: str) -> None:
    standin = _ReportingStandIn(token, strict_users=False).start()
    print(json.dumps({"url": standin.url}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    standin.stop()


class SlackProc:
    """Parent side: starts the child, knows its URL, and when each credential DM arrived."""

    def __init__(self, token: str, timeout: float = 15.0):
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.slack_proc", token],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._credentials: dict[str, float] = {}
        self._changed = threading.Condition()
        self._url: str | None = None
        self._reader = threading.Thread(target=self._read, name="slack-proc-reader", daemon=True)
        self._reader.start()
        with self._changed:
            if not self._changed.wait_for(lambda: self._url is not None or self._process.poll() is not None, timeout):
                self.kill()
                raise TimeoutError("the Slack stand-in child did not start")
        if self._url is None:
            raise RuntimeError("the Slack stand-in child exited at start")
        self.url: str = self._url

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            message = json.loads(line)
            with self._changed:
                if "url" in message:
                    self._url = message["url"]
                else:
                    self._credentials[message["credential"]] = float(message["at"])
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def credential_at(self, request_id: str, timeout: float = 15.0) -> float:
        """time.monotonic() at which the stand-in received the credential DM for `request_id`."""
        with self._changed:
            if not self._changed.wait_for(lambda: request_id in self._credentials, timeout):
                raise TimeoutError(f"no credential DM for {request_id} within {timeout:.0f}s")
            return self._credentials[request_id]

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=5)

    def close(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> SlackProc:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


if __name__ == "__main__":
    main(sys.argv[1])
