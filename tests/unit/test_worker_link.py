"""The HTTP process's end of the worker link, without a worker: health from the reports, back-pressure, no socket."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from bot import tasks
from bot.settings import load_settings
from bot.worker_link import BACKLOG, STALE, WorkerLink


def link() -> WorkerLink:
    return WorkerLink(load_settings(slack_bot_token="xoxb-test"), timedelta(minutes=5), "bao")


def test_health_and_role_come_from_a_recent_report_only():
    worker = link()
    assert not worker.healthy() and worker.role() == "starting"
    worker._report, worker._heard = {"role": "leader", "scheduler": True}, time.monotonic()
    assert worker.healthy() and worker.role() == "leader"
    worker._heard -= STALE + 1  # the worker went silent (dead, hung): down, and no longer the leader we know of
    assert not worker.healthy() and worker.role() == "unknown (worker silent)"


def test_a_task_comes_back_when_there_is_no_worker_or_its_queue_is_full():
    worker = link()
    assert worker.send(tasks.issue("JIT-1")) is False  # no worker yet: the caller runs it itself
    worker._sock = object()  # type: ignore[assignment]  # a worker, but nobody drains the queue
    for _ in range(BACKLOG):
        assert worker.send(tasks.issue("JIT-1"))
    assert worker.send(tasks.issue("JIT-1")) is False  # the ack never waits on a full socket
    worker.kick()  # a kick on a full queue is dropped: the worker polls anyway


def test_tasks_travel_as_json_lines_without_slacks_legacy_token():
    click = tasks.click({"token": "legacy-verification-token", "user": {"id": "U1"}, "actions": [{"value": "JIT-1"}]})
    line = click.encode()
    assert line.endswith(b"\n") and b"legacy-verification-token" not in line
    assert tasks.decode(json.loads(line)) == click
