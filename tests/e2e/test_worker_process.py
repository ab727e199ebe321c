"""`jitbot serve --worker-process`: the same flows end to end with the post-ack work, the outbox and the timers in a
worker process; the worker never outlives the HTTP process and is replaced when it dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from devkit.slack_client import SignedSlackClient
from devkit.standin import message_text
from tests.conftest import REQUESTER, SIGNING_SECRET, World
from tests.e2e.test_e2e import (  # noqa: F401 - collected again here, in a world with a worker process
    test_early_revoke_kills_the_token,
    test_expiry_revokes_on_time,
    test_happy_path_credential_works_with_exactly_the_scope,
    test_list_help_and_deny,
    test_racing_approvers_and_double_clicks_issue_one_credential,
    test_request_form,
)
from tests.e2e.test_processes import env, events, grant  # noqa: F401 - the env fixture
from tests.e2e.test_workflows_e2e import (  # noqa: F401
    catalog_edits,
    test_break_glass_is_loud_and_reviewed,
    test_self_service_extension_and_the_offer_on_a_second_request,
    w,
)
from tests.processes import ServeProcess


@pytest.fixture
def worker_process() -> bool:
    return True


def test_the_http_process_keeps_no_outbox_or_timers_and_healthz_reports_the_workers(world: World):
    runtime = world.bot.runtime
    assert runtime is not None and runtime.link is not None and runtime.outbox is None
    deadline = time.monotonic() + 15
    while runtime.role() != "leader":  # the worker's report: it holds the leader lock
        assert time.monotonic() < deadline, runtime.role()
        time.sleep(0.05)
    assert runtime.health()["scheduler"] and not runtime.timekeeper.leader  # the worker leads, this process does not
    with urllib.request.urlopen(f"{world.bot.url}/healthz", timeout=5) as response:  # what a load balancer sees
        assert json.load(response) == {"database": "ok", "vault": "ok", "scheduler": "ok", "role": "leader"}
    # The Home tab is published by the worker, which then keeps it fresh when a request changes.
    world.client.open_home(REQUESTER)
    world.slack.wait_for(lambda: world.slack.calls_to("views.publish"))


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    return [int(p) for p in found]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead, only not reaped yet


def test_a_killed_worker_is_replaced_and_a_killed_http_process_takes_its_worker_along(env, tmp_path, openbao):  # noqa: F811
    slack, environment = env
    bot = ServeProcess(environment, tmp_path / "serve.log", extra=["--worker-process"]).start()
    try:
        assert bot.process is not None
        (worker,) = _children(bot.process.pid)
        rid, _, _ = grant(slack, bot, "payments-read 30m INC-1 first", openbao.addr)  # the worker issued and delivered it

        os.kill(worker, signal.SIGKILL)  # a crashed worker: the HTTP process starts another
        deadline = time.monotonic() + 20
        while not [p for p in _children(bot.process.pid) if p != worker and _alive(p)]:
            assert time.monotonic() < deadline, bot.log_path.read_text()
            time.sleep(0.1)
        # The new worker carries out what the HTTP process hands it: a revoke, then a whole new grant.
        client = SignedSlackClient(bot.url, SIGNING_SECRET, standin=slack)
        assert client.slash(REQUESTER, f"revoke {rid}")[0] == 200
        deadline = time.monotonic() + 20
        while "revoked" not in events(environment["DATABASE_URL"], rid):
            assert time.monotonic() < deadline, bot.log_path.read_text()
            time.sleep(0.1)
        second, _, _ = grant(slack, bot, "payments-read 30m INC-2 second", openbao.addr)
        assert second != rid
        (replacement,) = [p for p in _children(bot.process.pid) if _alive(p)]

        bot.kill()  # SIGKILL: no shutdown hook runs, yet the worker sees its socket close and exits
        deadline = time.monotonic() + 20
        while _alive(replacement):
            assert time.monotonic() < deadline, "the worker outlived the HTTP process"
            time.sleep(0.1)
        assert "the worker process exited" in bot.log_path.read_text()
        assert any(rid in message_text(m) for m in slack.dm_messages(REQUESTER))
    finally:
        bot.kill()
