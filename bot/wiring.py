"""The composition root: builds adapters from settings and hands them to the service and the Bolt app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.settings import Settings
from grants.adapters.clock import SystemClock
from grants.adapters.sql_store import SqlStore, make_engine
from grants.catalog import load_catalog

# The Slack, Vault and scheduler stacks are imported where they are built, so that the audit
# commands (which need only the database) start in a fraction of the time.
if TYPE_CHECKING:
    from slack_bolt import App
    from slack_sdk import WebClient

    from bot.context import BotContext
    from bot.gate import SlackGate
    from bot.notifier import SlackNotifier
    from bot.outbox_worker import OutboxWorker
    from bot.web import WebApp
    from bot.worker_link import WorkerLink
    from grants.adapters.scheduler_timer import SchedulerTimer
    from grants.adapters.vault_client import VaultSession
    from grants.catalog import Catalog
    from grants.ports import AuditAnchor
    from grants.service import ElevationService
    from grants.timekeeper import TimeKeeper

log = logging.getLogger(__name__)


def open_store(settings: Settings, migrate: bool = False) -> SqlStore:
    engine = make_engine(settings.database_url)
    if migrate:
        migrate_engine(engine)
    return SqlStore(engine)


def migrate_database(settings: Settings) -> None:
    migrate_engine(make_engine(settings.database_url))


def migrate_engine(engine: object) -> None:
    from grants.adapters.migrate import upgrade  # Alembic is slow to import and only needed here

    upgrade(engine)  # type: ignore[arg-type]


def open_audit(settings: Settings) -> tuple[SqlStore, SystemClock]:
    """The store and clock the audit commands need, and nothing else."""
    return open_store(settings), SystemClock()


def open_anchor(settings: Settings, vault: VaultSession | None = None) -> AuditAnchor | None:
    """The audit chain's anchor in Vault, when Vault is configured (`jitbot audit verify` may run without it)."""
    from grants.adapters.vault_anchor import VaultAnchor

    if vault is None and settings.vault_addr is None:
        return None
    return VaultAnchor((vault or open_vault(settings)).client, settings.jitbot_audit_anchor)


def sync_vault(settings: Settings) -> list[str]:
    from grants.adapters.kinds import credential_kinds
    from grants.adapters.vault_sync import sync as vault_sync

    catalog = load_catalog(settings.jitbot_catalog)
    session = open_vault(settings)
    kinds = credential_kinds(
        session, identity_alias_mount=catalog.settings.identity_alias_mount, ssh_krl_path=settings.jitbot_ssh_krl
    )
    return vault_sync(session.client, settings.jitbot_catalog.parent, catalog, kinds)


def sweep_vault(settings: Settings, now: datetime, max_age: timedelta) -> list[str]:
    """`jitbot vault sweep`: delete identity groups past their end (or too old), whatever the bot's state."""
    from grants.adapters.kinds.identity import sweep

    return sweep(open_vault(settings).client, now, max_age)


def open_vault(settings: Settings) -> VaultSession:
    from grants.adapters.vault_client import vault_session

    settings.require_vault()
    assert settings.vault_addr is not None
    return vault_session(
        settings.vault_addr,
        token=settings.vault_token.get_secret_value() if settings.vault_token else None,
        role_id=settings.vault_role_id,
        secret_id=settings.vault_secret_id.get_secret_value() if settings.vault_secret_id else None,
    )


def slack_client(settings: Settings) -> WebClient:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    from bot.slack_pacing import PacedWebClient, Unpaced

    settings.require_slack()
    assert settings.slack_bot_token is not None
    return PacedWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
        pacer=None if settings.jitbot_slack_pacing else Unpaced(),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


@dataclass
class Runtime:
    catalog: Catalog
    store: SqlStore
    timer: SchedulerTimer
    service: ElevationService
    notifier: SlackNotifier
    timekeeper: TimeKeeper
    vault: VaultSession
    ctx: BotContext
    app: App
    web: WebApp
    outbox: OutboxWorker | None = None
    tick_every: float = 1.0
    link: WorkerLink | None = None  # with a worker process, which then runs the outbox, the timers and post-ack work

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._loop: threading.Thread | None = None

    def start(self) -> None:
        """Start the scheduler and the leadership loop; the first tick (leader or not) runs at once,
        so a leader reconciles whatever happened while the bot was down before serving."""
        if self.link is not None:
            self.link.start()  # the worker process reconciles, elects, runs the timers and delivers
            self._loop = threading.Thread(target=self._run, name="jitbot-refusals", daemon=True)
            self._loop.start()
            return
        self.timer.start()
        self.timekeeper.timer.deactivate()  # no timers until this replica is elected
        if self.outbox is not None:
            self.outbox.start()  # every replica delivers: the rows are claimed, never sent twice by two replicas
        self._tick()
        self._loop = threading.Thread(target=self._run, name="jitbot-leadership", daemon=True)
        self._loop.start()

    def _run(self) -> None:
        ticks = 0
        while not self._stopping.wait(self.tick_every):
            self._tick()
            ticks += 1
            if ticks % 60 == 0:  # every replica keeps its own Vault token alive
                self._keep_vault_token()

    def _keep_vault_token(self) -> None:
        try:
            self.vault.keep_alive()
        except Exception:
            log.exception("keeping the bot's Vault token alive failed")

    def _tick(self) -> None:
        try:
            if self.link is not None:
                self.service.flush_refusals()  # the refusals counted here are written from here; the rest is the worker's
                return
            self.timekeeper.tick()
        except Exception:
            log.exception("leadership tick failed")  # e.g. the database is down; the next tick retries

    def stop(self) -> None:
        self._stopping.set()
        if self.link is not None:
            self.link.stop()  # the worker finishes the tasks it took, then exits
        self.ctx.work.shutdown(wait=True)
        if self._loop is not None:
            self._loop.join(timeout=5)
        self.timekeeper.step_down()
        self.timer.shutdown()
        if self.outbox is not None:
            self.outbox.stop()  # what is left stays in the outbox: the next start (or another replica) sends it
        self.notifier.shutdown()
        self.store.close()
        self.vault.close()

    def health_checks(self) -> dict[str, Callable[[], bool]]:
        scheduler = self.link.healthy if self.link is not None else self.timer.healthy  # the timers run in the worker
        return {"database": self.store.healthy, "vault": self.vault.healthy, "scheduler": scheduler}

    def health(self) -> dict[str, bool]:
        """Each check run now, as long as it takes (the HTTP `/healthz` uses a cached, time-boxed copy)."""
        return {name: check() for name, check in self.health_checks().items()}

    def role(self) -> str:
        if self.link is not None:
            return self.link.role()  # the worker's: it holds (or waits for) the leader lock
        return "leader" if self.timekeeper.leader else "follower"


def build_runtime(
    settings: Settings, wrap_ttl: timedelta | None = None, cli: str = "vault", worker_process: bool = False
) -> Runtime:
    """The whole bot in one process; with `worker_process`, the HTTP side only: a worker process (started with the
    runtime) takes the post-ack work, the outbox and the timers."""
    from bot import home
    from bot.app import build_app
    from bot.context import BotContext
    from bot.directory import SlackDirectory
    from bot.gate import socket_mode_checks
    from bot.health import CachedHealth
    from bot.metrics import MeteredIssuer, MeteredStore, Metrics
    from bot.notifier import SlackNotifier
    from bot.outbox_worker import OutboxWorker
    from bot.web import WebApp
    from bot.worker_link import WorkerLink
    from grants.adapters.kinds import credential_kinds
    from grants.adapters.leader_lock import PostgresLeaderLock, leader_lock
    from grants.adapters.scheduler_timer import SchedulerTimer
    from grants.service import ElevationService
    from grants.timekeeper import TimeKeeper

    settings.require_slack()  # settings first: one message naming the variable beats a later failure
    settings.require_vault()
    catalog = load_catalog(settings.jitbot_catalog)
    client = slack_client(settings)
    assert settings.slack_signing_secret is not None
    store = open_store(settings, migrate=True)
    store.claim_lease = timedelta(seconds=settings.jitbot_outbox_lease)
    metrics = Metrics()
    wrap_ttl = wrap_ttl or timedelta(seconds=settings.jitbot_wrap_ttl)
    vault = open_vault(settings)
    kinds = credential_kinds(
        vault,
        wrap_ttl=wrap_ttl,
        cli=cli,
        identity_alias_mount=catalog.settings.identity_alias_mount,
        ssh_krl_path=settings.jitbot_ssh_krl,
    )
    issuer = MeteredIssuer(kinds, metrics)
    timer = SchedulerTimer()
    notifier = SlackNotifier(client, catalog, store, on_failure=lambda: metrics.failures.labels("slack").inc())
    clock = SystemClock()
    anchor = open_anchor(settings, vault)
    service = ElevationService(
        catalog, MeteredStore(store, metrics), issuer, notifier, timer, clock, SlackDirectory(client), anchor
    )
    timer.on_due = service.wake  # timers only wake the service; the database says what is due
    service.deps.deliver_within = wrap_ttl  # an undelivered credential is replaced once its wrap has expired
    link = WorkerLink(settings, wrap_ttl, cli) if worker_process else None
    outbox = None
    if link is not None:
        service.deps.kick = link.kick  # a commit with notices wakes the worker's delivery threads at once
    else:
        outbox = OutboxWorker(
            service.deps, on_failure=lambda: metrics.failures.labels("slack").inc(), heartbeat=settings.jitbot_outbox_lease / 3
        )
        service.deps.kick = outbox.kick  # a commit with notices wakes the workers at once
        notifier.outbox_drain = outbox.drain
        timer.on_due_many = ending_in_batches(service, outbox)
    notifier.home = home.renderer(service)
    lock = leader_lock(store.engine)
    if isinstance(lock, PostgresLeaderLock):
        lock.on_lost = timer.deactivate  # a lost lease stops the timers at once, even while a tick is stuck
    timekeeper = TimeKeeper(service, lock, timer, clock)
    ctx = BotContext(service=service, catalog=catalog, notifier=notifier, forward=link.send if link else None)
    app = build_app(ctx, client, settings.slack_signing_secret.get_secret_value())
    gate = build_gate(settings, store, service, client)
    app.middleware(socket_mode_checks(gate))  # what reaches Bolt by Socket Mode skipped the HTTP gate
    # With a worker process the timers are the worker's: /healthz reports them from its last report.
    scheduler = link.healthy if link is not None else timer.healthy
    health = CachedHealth({"database": store.healthy, "vault": vault.healthy, "scheduler": scheduler})
    web = WebApp(
        app,
        health,
        lambda: {"role": runtime.role()},
        metrics.render,
        gate=gate,
        metrics_token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
        serve_metrics=settings.metrics_port is None,
        ssh_krl=settings.jitbot_ssh_krl,
    )
    runtime = Runtime(catalog, store, timer, service, notifier, timekeeper, vault, ctx, app, web, outbox, link=link)
    return runtime


def ending_in_batches(service: ElevationService, outbox: OutboxWorker) -> Callable[[list[str]], None]:
    """Keys due together (a burst of expiries) are ended in batches, deliveries holding back while a batch runs."""

    def wake_many(keys: list[str]) -> None:
        with outbox.yielding():
            service.wake_many(keys)

    return wake_many


def build_gate(settings: Settings, store: SqlStore, service: ElevationService, client: WebClient) -> SlackGate:
    """The checks before Bolt: signature, workspace (pinned or learned from auth.test), replay cache."""
    from bot.gate import SlackGate, TeamPin
    from grants.adapters.replay_cache import SqlReplayCache

    def refused(actor: str, rule: str) -> None:
        # Through the service: counted and logged like every other refusal, and the trail keeps one writer.
        service.refuse(actor, "slack_request", rule)

    assert settings.slack_signing_secret is not None
    pin = TeamPin(settings.slack_team_id, lambda: str(client.auth_test()["team_id"]))
    guard = SqlReplayCache(store.engine, store.write_lock)
    return SlackGate(settings.slack_signing_secret.get_secret_value(), guard, pin, refused)
