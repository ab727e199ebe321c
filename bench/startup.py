"""Start-up with many active grants: from nothing to `/healthz` 200 with every expiry timer armed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bench.core import BOT_TOKEN, Figure, Lab, http_status, p50, say, wait_until
from bench.seed import active_grants, insert_requests
from bench.slack_proc import SlackProc
from grants.adapters.sql_store import make_engine
from grants.adapters.sql_tables import RequestRow
from grants.domain import State

NAME = "startup"


def _read_rows(database_url: str) -> float:
    """The baseline: a fresh engine reads every active grant row (SQLAlchemy Core, no domain objects)."""
    started = time.monotonic()
    engine = make_engine(database_url)
    table = RequestRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(select(table).where(table.c.state == State.ACTIVE.value)).fetchall()
    elapsed = time.monotonic() - started
    engine.dispose()
    assert rows
    return elapsed


def _armed(runtime: Any, count: int) -> bool:
    """The timer is armed: the claim loop's first idle round set it for the soonest deadline the database holds
    (one job, whatever the number of grants)."""
    return runtime.timer.armed_for() is not None


def run(lab: Lab) -> list[Figure]:
    count = lab.size(10_000, 500)
    with SlackProc(BOT_TOKEN) as slack, lab.database(NAME) as database_url:
        lab.adopt(slack)
        now = datetime.now(UTC)
        # Future expiries spread over the next hours; accessors need not exist in Vault: nothing comes due here.
        expiries = [now + timedelta(hours=1, seconds=i) for i in range(count)]
        insert_requests(
            database_url, active_grants([f"bench-accessor-{i:06d}" for i in range(count)], expiries, now, lab.catalog)
        )
        _ = lab.vault  # started before the clock runs: Vault is a dependency that is already up
        baseline = p50([_read_rows(database_url) for _ in range(3)])
        bot = lab.bot(database_url, slack.url)
        started = time.monotonic()
        try:
            bot.start()
            running = time.monotonic()
            assert bot.runtime is not None
            runtime = bot.runtime
            wait_until(lambda: http_status(bot.url + "/healthz") == 200 and _armed(runtime, count), 60, "healthy and armed", 0.01)
            ready = time.monotonic()
            armed = 1 if runtime.timer.armed_for() is not None else 0
        finally:
            bot.stop()
    took = ready - started
    say(f"{count} active grants: start() returned after {running - started:.2f}s, healthy with {armed} timers at {took:.2f}s")
    return [
        Figure(
            NAME,
            f"start with {count:,} active grants → healthy, all armed",
            "s",
            took,
            baseline,
            f"reading the {count:,} rows (SQLAlchemy Core)",
            at_most=3.0,
            note=f"start() {running - started:.2f}s; {armed} timer jobs armed",
        )
    ]
