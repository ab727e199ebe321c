"""The composition root: builds adapters from settings and hands them to the service and the Bolt app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.settings import Settings
from bot.slack_catalog import load_catalog
from grants.adapters.clock import SystemClock
from grants.adapters.sql_store import SqlStore, make_engine
from grants.lifecycle import State

# The Slack, Vault and scheduler stacks are imported where they are built, so that the audit
# commands (which need only the database) start in a fraction of the time.
if TYPE_CHECKING:
    from slack_bolt import App
    from slack_sdk import WebClient

    from bot.context import BotContext
    from bot.gate import SlackBody, SlackGate
    from bot.inbox_worker import InboxWorker
    from bot.notifier import SlackNotifier
    from bot.outbox_worker import OutboxWorker
    from bot.stepup_page import StepUpPage
    from bot.web import WebApp
    from grants.adapters.control_groups import VaultControlGroups
    from grants.adapters.kinds.ssh_kind import SshKind
    from grants.adapters.scheduler_timer import SchedulerTimer
    from grants.adapters.vault_client import VaultSession
    from grants.audit_stream import Streamer
    from grants.catalog import Catalog
    from grants.claiming import ClaimLoop
    from grants.domain import AuditEvent
    from grants.inbox import Work
    from grants.ports import AuditAnchor, Inbox, OnCallSource, Tracker
    from grants.service import ElevationService
    from grants.timekeeper import DueWork

log = logging.getLogger(__name__)


def open_store(settings: Settings, migrate: bool = False, watchers: Sequence[Callable[[AuditEvent], None]] = ()) -> SqlStore:
    engine = make_engine(settings.database_url)
    if migrate:
        migrate_engine(engine)
    return SqlStore(engine, claim_lease=timedelta(seconds=settings.jitbot_outbox_lease), watchers=watchers)


def database_unreachable(settings: Settings) -> str | None:
    """Why the database cannot be used (one line), or None: start-up says so instead of a traceback."""
    from grants.adapters.sql_store import unreachable

    return unreachable(settings.database_url)


def migrate_database(settings: Settings) -> tuple[str | None, str | None]:
    """`jitbot db upgrade`: the schema revision before and after."""
    engine = make_engine(settings.database_url)
    try:
        return migrate_engine(engine)
    finally:
        engine.dispose()


def migrate_engine(engine: object) -> tuple[str | None, str | None]:
    from grants.adapters.migrate import upgrade  # Alembic is slow to import and only needed here

    return upgrade(engine)  # type: ignore[arg-type]


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
    from grants.adapters.seal_key import ensure_seal_key
    from grants.adapters.vault_anchor import check_anchor
    from grants.adapters.vault_sync import sync as vault_sync

    catalog = load_catalog(settings.jitbot_catalog)
    session = open_vault(settings)
    kinds = credential_kinds(session, identity_alias_mount=catalog.settings.identity_alias_mount)
    lines = vault_sync(session.client, settings.jitbot_catalog.parent, catalog, kinds)
    lines.append(ensure_seal_key(session.client, settings.jitbot_audit_anchor.partition("/")[0]))
    return lines + check_anchor(session.client, settings.jitbot_audit_anchor)


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
        # No retry on 429: it would sleep out Slack's Retry-After in the calling thread (one that issues a credential
        # or runs a click). A rate-limited notice goes back to its outbox row with that not-before time instead.
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


# What each process runs: `serve` everything (the demo, SQLite); `web` verifies, records and acks; `worker` claims
# and runs what is due (the inbox, the outbox, deadlines, the audit stream). Any number of each on PostgreSQL.
ROLES = ("serve", "web", "worker")


@dataclass
class Runtime:
    role: str
    catalog: Catalog
    store: SqlStore
    timer: SchedulerTimer
    service: ElevationService
    notifier: SlackNotifier
    vault: VaultSession
    ctx: BotContext
    app: App
    web: WebApp
    due: DueWork | None = None  # grant ends, reminders, warnings, retries: claimed request rows
    outbox: OutboxWorker | None = None
    inbox: InboxWorker | None = None  # runs the work recorded with acked requests
    streaming: AuditStreaming | None = None  # the audit trail to a SIEM
    tick_every: float = 1.0
    orphans_every: int = 15  # ticks between looks for credentials no grant holds
    tickets_every: int = 30  # ticks between looks at the tickets of `end_when_closed` grants (JITBOT_TICKET_WATCH)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._loop: threading.Thread | None = None
        self._watcher: threading.Thread | None = None

    @property
    def works(self) -> bool:
        return self.role != "web"

    def start(self) -> None:
        """Start the claim loops (a worker's); the first housekeeping tick runs before this returns."""
        if self.works:
            self.timer.start()
            for loop in (self.inbox, self.outbox, self.streaming, self.due):
                if loop is not None:
                    loop.start()  # rows a crash left behind are taken up once their lease lapses
        self._tick(0)
        self._loop = threading.Thread(target=self._run, name="jitbot-housekeeping", daemon=True)
        self._loop.start()

    def _run(self) -> None:
        ticks = 0
        while not self._stopping.wait(self.tick_every):
            ticks += 1
            self._tick(ticks)
            if ticks % 60 == 0:  # every process keeps its own Vault token alive
                self._keep_vault_token()

    def _keep_vault_token(self) -> None:
        try:
            self.vault.keep_alive()
        except Exception:
            log.exception("keeping the bot's Vault token alive failed")

    def _tick(self, ticks: int) -> None:
        self._chore(self.service.flush_refusals)  # every process counts its own refusal bursts
        if not self.works:
            return
        # The anchor first, and each chore on its own: a failing reconcile or a slow tracker never holds the anchor
        # back (docs/security.md: an insider's window is about a tick).
        self._chore(self.service.anchor_chain)  # any worker: the anchor is written with KV check-and-set
        if ticks % self.orphans_every == 0:
            self._chore(self._reconcile)
        if ticks % self.tickets_every == 0 and (self._watcher is None or not self._watcher.is_alive()):
            # One tracker call per ticket-bound grant (seconds each when a tracker hangs): on a thread of its own, one
            # round at a time. Any worker may: ending a grant is a compare-and-swap.
            self._watcher = threading.Thread(
                target=self._chore, args=(self.service.watch_tickets,), name="jitbot-ticket-watch", daemon=True
            )
            self._watcher.start()

    def _reconcile(self) -> None:
        counts = self.service.reconcile()
        if any(counts.values()):
            log.info("reconciled", extra=counts)

    @staticmethod
    def _chore(chore: Callable[[], object]) -> None:
        try:
            chore()
        except Exception:  # e.g. the database, Vault or a tracker is down; the next tick retries
            log.exception("housekeeping failed: %s", getattr(chore, "__name__", "a chore"))

    def stop(self) -> None:
        self._stopping.set()
        if self.inbox is not None:
            self.inbox.stop()  # what it did not finish stays claimed until the lease lapses, then runs elsewhere
        if self.due is not None:
            self.due.stop()
        self.ctx.work.shutdown(wait=True)
        if self._loop is not None:
            self._loop.join(timeout=5)
        self.timer.shutdown()
        if self.outbox is not None:
            self.outbox.stop()  # what is left stays in the outbox: the next start (or another worker) sends it
        if self.streaming is not None:
            self.streaming.stop()
        self.notifier.shutdown()
        self.store.close()
        self.vault.close()

    def health_checks(self) -> dict[str, Callable[[], bool]]:
        checks = {"database": self.store.healthy, "vault": self.vault.healthy}
        return checks | ({"scheduler": self.timer.healthy} if self.works else {})

    def health(self) -> dict[str, bool]:
        """Each check run now, as long as it takes (the HTTP `/healthz` uses a cached, time-boxed copy)."""
        return {name: check() for name, check in self.health_checks().items()}

    def drain(self) -> None:
        """Deliver every due notice, then wait for the Home tabs they queued (shutdown, tests, the demo)."""
        if self.outbox is not None:
            self.outbox.drain()
        self.notifier.drain()


def build_runtime(settings: Settings, wrap_ttl: timedelta | None = None, cli: str = "vault", role: str = "serve") -> Runtime:
    """One process of the bot: `serve` (web and worker in one), `web` or `worker` (PostgreSQL only)."""
    from bot import home
    from bot.app import build_app
    from bot.context import BotContext
    from bot.directory import SlackDirectory
    from bot.gate import socket_mode_checks
    from bot.health import CachedHealth
    from bot.inbox_worker import InboxWorker, taker
    from bot.listeners.deferred import work_of
    from bot.metrics import MeteredIssuer, Metrics
    from bot.notifier import SlackNotifier
    from bot.outbox_worker import OutboxWorker
    from bot.web import WebApp
    from grants.adapters.control_groups import ControlGroupHolds, VaultControlGroups
    from grants.adapters.due_store import SqlDue
    from grants.adapters.inbox_store import SqlInbox
    from grants.adapters.kinds import credential_kinds
    from grants.adapters.kinds.ssh_kind import SshKind
    from grants.adapters.kinds.ssh_revocations import SshRevocations
    from grants.adapters.scheduler_timer import SchedulerTimer
    from grants.adapters.seal_key import open_sealer
    from grants.adapters.stepup_store import SqlStepUpLinks
    from grants.claiming import Wakeup
    from grants.service import ElevationService
    from grants.timekeeper import DueWork

    require_role(settings, role)
    settings.require_slack()  # settings first: one message naming the variable beats a later failure
    settings.require_vault()
    catalog = load_catalog(settings.jitbot_catalog)
    client = slack_client(settings)
    assert settings.slack_signing_secret is not None
    metrics = Metrics()
    # Processes starting together take turns migrating (see migrate.upgrade). Every audit event the store commits is
    # counted and logged, whoever wrote it.
    store = open_store(settings, migrate=True, watchers=[metrics.on_committed])
    lease = settings.jitbot_outbox_lease
    wrap_ttl = wrap_ttl or timedelta(seconds=settings.jitbot_wrap_ttl)
    vault = open_vault(settings)
    # The kinds release held answers through the holds; the control groups open requests through the kinds.
    holds = ControlGroupHolds(vault.client, alias_mount=catalog.settings.identity_alias_mount)
    kinds = credential_kinds(
        vault,
        wrap_ttl=wrap_ttl,
        cli=cli,
        identity_alias_mount=catalog.settings.identity_alias_mount,
        ssh=SshRevocations(store),
        ssh_krl_copy=settings.jitbot_ssh_krl,
        gate=holds,
    )
    gates = VaultControlGroups(vault.client, kinds, alias_mount=catalog.settings.identity_alias_mount)
    ssh = kinds.kinds["ssh"]
    assert isinstance(ssh, SshKind)
    adopt_legacy_krl(ssh, settings)
    issuer = MeteredIssuer(kinds, metrics)
    # Rung by a commit with notices (the outbox's threads) and by the timer (the due requests' claim loop); made
    # before the loops they wake, which are built from the service that rings them.
    outbox_wakeup, due_wakeup = Wakeup(), Wakeup()
    timer = SchedulerTimer(on_due=due_wakeup.ring)  # the timer only wakes the claim loop; the database says what is due

    # A true cycle: a Home tab is rendered from the service's queries, and the service notifies through this notifier.
    # The callback finds the service when a tab is rendered, which is after start-up.
    def home_tab(user: str) -> dict[str, Any]:
        return home.renderer(service)(user)

    notifier = SlackNotifier(client, catalog, store, on_failure=lambda: metrics.failures.labels("slack").inc(), home=home_tab)
    clock = SystemClock()
    anchor = open_anchor(settings, vault)
    # One key, read once: credential seals and the inbox rows' MACs (without it both run unauthenticated; it warns).
    sealer = open_sealer(vault.client, settings.jitbot_audit_anchor.partition("/")[0])
    service = ElevationService(
        catalog, store, issuer, notifier, timer, clock, SlackDirectory(client), anchor,
        kick=outbox_wakeup.ring,  # a commit with notices wakes this process's delivery threads at once
        control_groups=gates,
        sealer=sealer,
        step_up_links=SqlStepUpLinks(store),  # every process: a click makes a link, the page (web_url) follows it
        trackers=context_adapters(catalog, settings),
        oncall=oncall_adapter(catalog, settings),
    )  # fmt: skip
    ctx = BotContext(service=service, catalog=catalog, notifier=notifier)
    inbox = SqlInbox(store, sealer)
    works = role != "web"
    outbox = inbox_worker = due = None
    # A worker on its own polls more often: what a web process records reaches it only through the database.
    poll = 1.0 if role == "serve" else 0.25
    if works:
        due = DueWork(SqlDue(store), service.wake, timer, clock, heartbeat=lease / 3, wakeup=due_wakeup)
        outbox = OutboxWorker(
            service.deps, on_failure=lambda: metrics.failures.labels("slack").inc(), heartbeat=lease / 3, poll=poll,
            wakeup=outbox_wakeup,
            defer_to=due,  # revocations and expiries never wait behind chat messages (this process's)
        )  # fmt: skip
        inbox_worker = InboxWorker(
            ctx, inbox, clock, lambda prefix: store.renew_claims(prefix, clock.now()), ctx.work, heartbeat=lease / 3, poll=poll
        )
    # `serve` runs what it just recorded at once (claimed by itself); a web process leaves it to any worker.
    on_received = inbox_worker.take if role == "serve" and inbox_worker is not None else (lambda _: None)
    gate = build_gate(settings, store, service, client, inbox, work_of(ctx), taker() if role == "serve" else None)
    # What reaches Bolt by Socket Mode skipped the HTTP gate: the same checks run as its first middleware.
    app = build_app(ctx, client, settings.slack_signing_secret.get_secret_value(), [socket_mode_checks(gate, on_received)])
    checks = {"database": store.healthy, "vault": vault.healthy} | ({"scheduler": timer.healthy} if works else {})
    # /readyz adds Slack: until the workspace is known (auth.test), every command would be answered 503.
    slack_known = lambda: gate.pin is None or gate.pin.team() is not None  # noqa: E731
    checks |= {"slack": slack_known}
    if anchor is not None:
        checks["anchor"] = service.anchor_up  # down: an anchor not written for a minute (fail closed)
    health = CachedHealth(checks)
    streaming = audit_streaming(catalog, settings, store, service) if works else None
    web = WebApp(
        app,
        health,
        lambda: {"role": role},
        partial(
            metrics.render,
            active_source=lambda: store.count(State.ACTIVE),
            anchor_source=service.anchor_up if anchor is not None else None,
            stream_source=streaming.lag if streaming is not None else None,
        ),
        gate=gate,
        metrics_token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
        serve_metrics=settings.metrics_port is None,
        ssh_krl=ssh.krl_bytes,
        on_received=on_received,
        stepup=step_up_page(catalog, service, vault, gates),
    )
    return Runtime(
        role, catalog, store, timer, service, notifier, vault, ctx, app, web, due, outbox, inbox_worker, streaming,
        tickets_every=max(1, round(settings.jitbot_ticket_watch / Runtime.tick_every)),
    )  # fmt: skip


def step_up_page(
    catalog: Catalog, service: ElevationService, vault: VaultSession, gates: VaultControlGroups
) -> StepUpPage | None:
    """The step-up page, with `web_url` (the links it follows are the service's, made in every process)."""
    from bot.stepup_page import StepUpPage
    from grants.adapters.control_groups import callback_url
    from grants.adapters.oidc_signin import VaultSignIn

    if not catalog.settings.web_url:
        return None
    flow = VaultSignIn(vault.client, gates, catalog.settings.step_up, callback_url(catalog))
    return StepUpPage(service, flow, catalog)


def adopt_legacy_krl(ssh: SshKind, settings: Settings) -> None:
    """Serials an older bot revoked into its own file (JITBOT_SSH_KRL, by default under the working directory) are
    taken into the database once: an upgrade must not un-revoke a certificate."""
    from pathlib import Path

    krl = settings.jitbot_ssh_krl or Path("jitbot-ssh/revoked.krl")
    taken = ssh.adopt_legacy(krl.with_suffix(".revoked.json"))
    if taken:
        log.warning("took %d revoked SSH serials from %s into the database", taken, krl.with_suffix(".revoked.json"))


def context_adapters(catalog: Catalog, settings: Settings) -> dict[str, Tracker]:
    """The catalog's ticket trackers, each with its token from the environment."""
    from grants.adapters.context import trackers

    tokens = settings.tracker_tokens(catalog.settings.trackers)
    return trackers(catalog.settings.trackers, {name: token.get_secret_value() for name, token in tokens.items()})


def oncall_adapter(catalog: Catalog, settings: Settings) -> OnCallSource | None:
    """PagerDuty when `[settings.oncall]` is set; without its token nobody counts as on call (never wider access)."""
    from grants.adapters.context.pagerduty import PagerDutyOnCall

    config = catalog.settings.oncall
    if config is None:
        return None
    if settings.jitbot_oncall_token is None:
        log.warning("[settings.oncall] is set but JITBOT_ONCALL_TOKEN is not: nobody counts as on call")
        return None
    cache = config.cache.total_seconds()
    return PagerDutyOnCall(config.url, settings.jitbot_oncall_token.get_secret_value(), cache_seconds=cache)


def require_role(settings: Settings, role: str) -> None:
    """SQLite has one writer: its one process is `jitbot serve` (web and worker threads together)."""
    from bot.settings import SettingsError

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if role != "serve" and not settings.database_url.startswith("postgresql"):
        raise SettingsError(
            f"`jitbot {role}` needs PostgreSQL (DATABASE_URL=postgresql+psycopg://…): on SQLite run `jitbot serve`, "
            "which runs the web side and the worker in one process"
        )


def build_gate(
    settings: Settings,
    store: SqlStore,
    service: ElevationService,
    client: WebClient,
    inbox: Inbox,
    work_of: Callable[[SlackBody], Work | None],
    claim_as: str | None,
) -> SlackGate:
    """The checks before Bolt: signature, workspace (pinned or learned from auth.test), then the inbox record."""
    from bot.gate import SlackGate, TeamPin

    def refused(actor: str, rule: str) -> None:
        # Through the service: counted and logged like every other refusal, and the trail keeps one writer.
        service.refuse(actor, "slack_request", rule)

    assert settings.slack_signing_secret is not None
    pin = TeamPin(settings.slack_team_id, lambda: str(client.auth_test()["team_id"]))
    return SlackGate(settings.slack_signing_secret.get_secret_value(), inbox, pin, refused, work_of=work_of, claim_as=claim_as)


@dataclass
class AuditStreaming:
    """The audit stream's sinks and its claim loop (one thread: events leave in seq order, and the sink's cursor row
    is claimed, so with several workers one of them sends at a time)."""

    streamer: Streamer
    loop: ClaimLoop
    lag: Callable[[], dict[str, tuple[int, float]]]

    def start(self) -> None:
        self.streamer.start()
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()  # an unsent batch stays behind the cursor: the next start (or another replica) sends it
        for sink in self.streamer.sinks:
            sink.close()


def audit_streaming(catalog: Catalog, settings: Settings, store: SqlStore, service: ElevationService) -> AuditStreaming | None:
    """The stream when `[settings.audit_stream]` names a collector; None otherwise."""
    config = catalog.settings.audit_stream
    if config is None or not (config.syslog or config.webhook):
        return None
    from bot.settings import SettingsError
    from grants import outbox
    from grants.adapters.audit_sinks import RelpSink, SyslogSink, WebhookSink
    from grants.adapters.sql_streams import SqlStreamStore
    from grants.audit_stream import Streamer
    from grants.claiming import ClaimLoop
    from grants.ports import Sink

    sinks: list[Sink] = []
    if config.syslog:
        relp = config.syslog.startswith("relp")
        sinks.append((RelpSink if relp else SyslogSink)(config.syslog, config.syslog_ca))
    if config.webhook:
        if settings.jitbot_audit_webhook_secret is None:
            raise SettingsError("JITBOT_AUDIT_WEBHOOK_SECRET is not set: the audit webhook's batches are signed with it")
        sinks.append(WebhookSink(config.webhook, settings.jitbot_audit_webhook_secret.get_secret_value(), config.webhook_ca))
    streams = SqlStreamStore(store)
    clock = service.deps.clock

    def alert(sink: str, behind: int, since: datetime) -> None:
        notice = outbox.alert(outbox.Alert.AUDIT_STREAM_BEHIND, sink=sink, behind=behind, since=f"{since:%Y-%m-%d %H:%M:%S} UTC")
        store.enqueue([notice], clock.now())
        service.deps.kick()

    streamer = Streamer(streams, sinks, clock.now, config, alert)
    loop = ClaimLoop(
        "audit-stream", streamer.round, lambda prefix: streams.renew_streams(prefix, clock.now()), threads=1,
        poll=0.5, heartbeat=store.claim_lease.total_seconds() / 3,
    )  # fmt: skip
    return AuditStreaming(streamer, loop, streams.stream_lag)
