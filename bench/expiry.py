"""Expiry at scale: a burst of grants expiring in the same second, and the revocation lag of a steady stream."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from hvac.exceptions import VaultError

from bench.core import BOT_TOKEN, Figure, Lab, p50, p99, say, wait_until
from bench.seed import StateCounter, active_grants, create_tokens, insert_requests
from bench.slack_proc import SlackProc
from grants.adapters.vault_client import vault_client
from grants.audit import AuditQuery
from grants.domain import AuditEvent, State

NAME = "expiry"


def _next_second(after: datetime) -> datetime:
    return after.replace(microsecond=0) + timedelta(seconds=1)


def _still_alive(lab: Lab, accessors: list[str]) -> int:
    """How many of these accessors Vault still knows (lookup by accessor; a revoked one is an error)."""
    root = vault_client(lab.vault.addr, lab.vault.root_token)
    alive = 0
    for accessor in accessors:
        try:
            root.auth.token.lookup_accessor(accessor)
            alive += 1
        except VaultError:
            pass
    return alive


def _expire_with_bot(
    lab: Lab, slack: SlackProc, tag: str, accessors: list[str], expiries: list[datetime]
) -> tuple[list[AuditEvent], dict[str, datetime]]:
    """Seed active grants with these accessors and expiries, start the real runtime, wait for every `expired` event.

    Returns the `expired` events and each grant's expiry by request ID."""
    with lab.database(tag) as database_url:
        grants = active_grants(accessors, expiries, datetime.now(UTC), lab.catalog, lab.sealer())
        insert_requests(database_url, grants)
        bot = lab.bot(database_url, slack.url).start()
        counter = StateCounter(database_url)
        try:
            armed = datetime.now(UTC)
            if armed >= min(expiries):
                say(f"{tag}: start-up ended {(armed - min(expiries)).total_seconds():.2f}s after the first expiry")
            horizon = (max(expiries) - armed).total_seconds()
            wait_until(
                lambda: counter.count(State.EXPIRED) >= len(accessors),
                horizon + 60 + len(accessors) / 20,
                f"{tag}: all expired",
                0.1,
            )
            assert bot.runtime is not None
            events = list(bot.runtime.store.events(AuditQuery()))
        finally:
            counter.close()
            bot.stop()
    expired = [e for e in events if e.event == "expired"]
    failed = [e for e in events if e.event == "revoke_failed"]
    if len(expired) != len(accessors) or failed:
        raise RuntimeError(f"{tag}: {len(expired)} expired events for {len(accessors)} grants, {len(failed)} revoke_failed")
    return expired, {g.id: g.expires_at for g in grants if g.expires_at is not None}


def _burst(lab: Lab, slack: SlackProc, n: int) -> list[Figure]:
    started = time.monotonic()
    warm, plain, seeded = create_tokens(lab, 10), create_tokens(lab, n), create_tokens(lab, n)
    say(f"created {2 * n + 10} tokens through the jitbot role in {time.monotonic() - started:.1f}s")
    client = lab.bot_vault()
    for accessor in warm:
        client.auth.token.revoke_accessor(accessor)
    started = time.monotonic()
    for accessor in plain:
        client.auth.token.revoke_accessor(accessor)
    baseline = time.monotonic() - started
    say(f"plain hvac loop revoked {n} accessors in {baseline:.2f}s")
    due = _next_second(datetime.now(UTC) + timedelta(seconds=lab.size(2, 1) + n / 1000))
    expired, _ = _expire_with_bot(lab, slack, "burst", seeded, [due] * n)
    took = (max(e.at for e in expired) - due).total_seconds()
    alive = _still_alive(lab, seeded if n <= 500 else seeded[:: max(1, n // 500)])
    if alive:
        raise RuntimeError(f"burst: {alive} tokens still alive in Vault after their grants were recorded expired")
    say(f"bot revoked and recorded {n} grants due in the same second in {took:.2f}s")
    lags = [float(e.detail["lag_seconds"]) for e in expired]
    return [
        Figure(
            NAME, f"{n} grants due in one second: all revoked + recorded", "s", took, baseline,
            f"plain hvac loop revoking {n} accessors", max_ratio=1.0, note=f"p50 lag {p50(lags):.2f}s",
        )
    ]  # fmt: skip


def _bare_scheduler_lags(lab: Lab, accessors: list[str], expiries: list[datetime]) -> tuple[list[float], list[float]]:
    """The baseline: an APScheduler configured like the bot's timer, whose jobs only revoke with hvac."""
    local = threading.local()
    woke: list[float] = []
    done: list[float] = []
    lock = threading.Lock()

    def revoke(accessor: str, due: datetime) -> None:
        lag = (datetime.now(UTC) - due).total_seconds()
        if not hasattr(local, "client"):
            local.client = lab.bot_vault()
        local.client.auth.token.revoke_accessor(accessor)
        with lock:
            woke.append(lag)
            done.append((datetime.now(UTC) - due).total_seconds())

    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(8)},
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        timezone="UTC",
    )
    scheduler.start()
    try:
        for accessor, due in zip(accessors, expiries, strict=True):
            scheduler.add_job(revoke, "date", run_date=due, args=(accessor, due), id=accessor)
        horizon = (max(expiries) - datetime.now(UTC)).total_seconds()
        wait_until(lambda: len(done) >= len(accessors), horizon + 60, "the bare scheduler's revocations", 0.05)
    finally:
        scheduler.shutdown(wait=False)
    return woke, done


def _steady(lab: Lab, slack: SlackProc, n: int, spread: float) -> list[Figure]:
    plain, seeded = create_tokens(lab, n), create_tokens(lab, n)

    def schedule(lead: float) -> list[datetime]:
        first = _next_second(datetime.now(UTC) + timedelta(seconds=lead))
        return [first + timedelta(seconds=spread * i / n) for i in range(n)]

    woke, done = _bare_scheduler_lags(lab, plain, schedule(1.0))
    expired, due = _expire_with_bot(lab, slack, "steady", seeded, schedule(lab.size(3.0, 1.5)))
    lags = [float(e.detail["lag_seconds"]) for e in expired]
    recorded = [(e.at - due[str(e.request_id)]).total_seconds() for e in expired]
    say(f"steady stream: bot p99 lag {p99(lags):.3f}s, bare scheduler p99 {p99(woke):.3f}s")
    rate = f"{n} grants over {spread:g}s"
    return [
        Figure(NAME, "steady-state revocation lag p50", "s", p50(lags), p50(woke), "bare APScheduler + hvac job, p50", note=rate),
        Figure(
            NAME, "steady-state revocation lag p99", "s", p99(lags), p99(woke), "bare APScheduler + hvac job, p99",
            at_most=0.025, note=f"{rate}; lag_seconds of the `expired` events",
        ),
        Figure(NAME, "steady-state lag until revoked + recorded, p99", "s", p99(recorded), p99(done),
               "bare job after its revoke call, p99", note="the `expired` event's `at` minus the grant's expiry"),
    ]  # fmt: skip


def run(lab: Lab) -> list[Figure]:
    burst = lab.size(2000, 100)
    steady, spread = lab.size(200, 20), float(lab.size(10, 2))
    with SlackProc(BOT_TOKEN) as slack:
        lab.adopt(slack)
        figures = _burst(lab, slack, burst)
        figures += _steady(lab, slack, steady, spread)
    assert math.isfinite(figures[0].value)
    return figures
