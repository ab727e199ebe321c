"""`jitbot serve` that SIGKILLs itself at one store write: a real crash between a Vault call and the store (test only).

`JITBOT_TEST_DIE_AT=<event>` names the audit event whose write never happens (`JITBOT_TEST_DIE_AFTER` seconds after it
was reached, for a new request's); `JITBOT_TEST_RECORD=<file>` gets one
JSON line per credential the kinds made before (handle, end, and the undelivered code, so the test can check it dies).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bot.cli import main
from grants.adapters.sql_store import SqlStore
from grants.credentials import CredentialHandle, CredentialKinds, IssuedCredential, IssueOrder


def _record(order: IssueOrder, credential: IssuedCredential) -> None:
    line = {
        "request_id": order.request_id,
        "handle": str(credential.handle),
        "until": order.until.isoformat(),
        "valid_until": credential.valid_until.isoformat() if credential.valid_until else None,
        "code": credential.delivery.code,
    }
    with Path(os.environ["JITBOT_TEST_RECORD"]).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def install(die_at: str) -> None:
    real_commit = SqlStore.commit
    real_issue, real_extend = CredentialKinds.issue, CredentialKinds.extend

    def commit(self: SqlStore, request: Any, event: Any, notices: Any = (), expected_version: int | None = None) -> bool:
        if event.event == die_at:
            if expected_version is None:  # a new request: e.g. until the ack reached Slack
                time.sleep(float(os.environ.get("JITBOT_TEST_DIE_AFTER", "0")))
            os.kill(os.getpid(), signal.SIGKILL)  # no finally, no shutdown hook: the pod is gone
        return real_commit(self, request, event, notices, expected_version)

    def issue(self: CredentialKinds, order: IssueOrder, scope: Any) -> IssuedCredential:
        credential = real_issue(self, order, scope)
        _record(order, credential)
        return credential

    def extend(self: CredentialKinds, handle: CredentialHandle, order: IssueOrder, scope: Any) -> IssuedCredential:
        credential = real_extend(self, handle, order, scope)
        _record(order, credential)
        return credential

    SqlStore.commit = commit  # type: ignore[method-assign]
    CredentialKinds.issue = issue  # type: ignore[method-assign]
    CredentialKinds.extend = extend  # type: ignore[method-assign]


if __name__ == "__main__":
    install(os.environ["JITBOT_TEST_DIE_AT"])
    sys.exit(main(sys.argv[1:]))
