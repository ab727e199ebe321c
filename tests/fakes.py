"""Small honest fakes of the core's ports, for unit tests of the service."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from grants.audit import GENESIS_HASH, Anchor, AnchorMoved, AuditQuery, chained, detail_text
from grants.catalog import Catalog, Scope
from grants.credentials import (
    CredentialError,
    CredentialHandle,
    CredentialStatus,
    Delivery,
    ForeignCredential,
    IssuedCredential,
    IssueOrder,
    Orphan,
    Wrapping,
)
from grants.domain import AlreadyOpen, AuditEvent, Request, State
from grants.lifecycle import OPEN, Event
from grants.outbox import UNORDERED, Alert, Entry, Failure, News, Notice, Unreachable
from grants.ports import Directory
from grants.service import ElevationService
from grants.tickets import Ticket, TrackerUnavailable
from grants.usecases import delivering


class FakeClock:
    def __init__(self, start: datetime | None = None):
        self.current = start or datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class FakeStore:
    def __init__(self) -> None:
        self.requests: dict[str, Request] = {}
        self.audit: list[AuditEvent] = []
        self.lock = threading.RLock()
        self.refs: dict[str, list[tuple[str, str, int | None]]] = {}
        self.ssh_keys: dict[str, str] = {}
        self.csrs: dict[str, str] = {}
        self.outbox: list[dict[str, Any]] = []  # rows as the SQL outbox holds them
        self.clock: FakeClock | None = None  # set by bootstrap: a notice's created_at is the core's time

    # the outbox, with the SQL store's rules: due, unclaimed (or lease expired), head of its request's queue

    def _queue(self, notices: Iterable[Notice], at: datetime | None = None) -> None:
        at = at or (self.clock.now() if self.clock else datetime.now(UTC))
        for notice in notices:
            due = at + notice.due_in if notice.due_in else at
            self.outbox.append({"id": len(self.outbox) + 1, "notice": notice, "created_at": at, "attempts": 0,
                                "next_attempt_at": due, "claimed_until": None, "delivered_at": None, "failed_at": None})  # fmt: skip

    def enqueue(self, notices: Iterable[Notice], at: datetime) -> None:
        with self.lock:
            self._queue(notices, at)

    def claim(self, worker: str, now: datetime, limit: int) -> list[Entry]:
        with self.lock:
            open_rows = [r for r in self.outbox if r["delivered_at"] is None and r["failed_at"] is None]
            claimed = []
            for row in open_rows:
                notice = row["notice"]
                earlier = notice.kind not in UNORDERED and notice.request_id is not None and any(
                    o["id"] < row["id"] and o["notice"].request_id == notice.request_id and o["notice"].kind not in UNORDERED
                    for o in open_rows
                )  # fmt: skip
                lease_free = row["claimed_until"] is None or row["claimed_until"] <= now
                if row["next_attempt_at"] <= now and lease_free and not earlier and len(claimed) < limit:
                    row["claimed_until"] = now + timedelta(seconds=60)
                    claimed.append(Entry(row["id"], notice, row["created_at"], row["attempts"]))
            return claimed

    def _row(self, entry_id: int) -> dict[str, Any]:
        return self.outbox[entry_id - 1]

    def renew_claims(self, worker_prefix: str, now: datetime) -> int:
        return 0  # one process, synchronous: a claim never outlives its delivery

    def delivered(self, entry_id: int, at: datetime) -> None:
        self._row(entry_id).update(delivered_at=at, claimed_until=None)

    def retry_at(self, entry_id: int, when: datetime) -> None:
        row = self._row(entry_id)
        row.update(attempts=row["attempts"] + 1, next_attempt_at=when, claimed_until=None)

    def failed(self, entry_id: int, at: datetime) -> None:
        self._row(entry_id).update(failed_at=at, claimed_until=None)

    def settle_credential(self, request_id: str, accessor: str, at: datetime) -> None:
        for row in self.outbox:
            notice = row["notice"]
            if notice.kind == "credential" and notice.request_id == request_id and notice.args["accessor"] == accessor:
                row["delivered_at"] = row["delivered_at"] or at

    def pending(self) -> list[Notice]:
        """Notices not yet delivered nor given up."""
        return [r["notice"] for r in self.outbox if r["delivered_at"] is None and r["failed_at"] is None]

    def commit(
        self, request: Request, event: AuditEvent, notices: Sequence[Notice] = (), expected_version: int | None = None
    ) -> bool:
        with self.lock:
            if expected_version is None:
                assert request.id not in self.requests
                if any(
                    r.requester == request.requester and r.scope == request.scope and r.state in OPEN
                    for r in self.requests.values()
                ):
                    raise AlreadyOpen(f"You already have an open request for `{request.scope}`.", field="scope")
            elif self.requests[request.id].version != expected_version:
                return False
            self.requests[request.id] = request
            self._append(event)
            self._queue(notices)
            return True

    def get(self, request_id: str) -> Request | None:
        return self.requests.get(request_id)

    def find(
        self,
        *,
        states: Collection[State] | None = None,
        requester: str | None = None,
        scopes: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[Request]:
        found = [
            r
            for r in sorted(self.requests.values(), key=lambda r: r.created_at, reverse=True)
            if (states is None or r.state in states)
            and (requester is None or r.requester == requester)
            and (scopes is None or r.scope in scopes)
        ]
        return found[:limit] if limit else found

    def count_requests(self, requester: str, since: datetime) -> int:
        return sum(1 for r in self.requests.values() if r.requester == requester and r.created_at >= since)

    def open_reviews(self) -> list[Request]:
        return [r for r in self.requests.values() if r.review_state == "open"]

    def record(self, event: AuditEvent) -> AuditEvent:
        with self.lock:
            return self._append(event)

    def _append(self, event: AuditEvent) -> AuditEvent:
        prev = self.audit[-1].hash if self.audit else GENESIS_HASH
        linked = chained(event, len(self.audit) + 1, prev or GENESIS_HASH)
        self.audit.append(linked)
        return linked

    def events(self, query: AuditQuery) -> Iterator[AuditEvent]:
        for e in list(self.audit):
            if (query.since and e.at < query.since) or (query.until and e.at >= query.until):
                continue
            if query.scope and e.scope != query.scope:
                continue
            if query.user and query.user not in (e.actor, e.subject):
                continue
            if query.from_seq is not None and (e.seq or 0) < query.from_seq:
                continue
            yield e

    def event_rows(self, query: AuditQuery) -> Iterator[tuple[Any, ...]]:
        for e in self.events(query):
            yield (e.seq, e.at, e.event, e.request_id, e.scope, e.actor, e.subject, detail_text(e.detail), e.prev_hash, e.hash)

    def csv_lines(self, query: AuditQuery) -> None:
        return None  # only a database can build CSV lines itself

    def audited_credential(self, request_id: str) -> str | None:
        for e in reversed(self.audit):
            if e.request_id == request_id and e.event in ("issued", "extended", "reissued") and e.detail.get("accessor"):
                return str(e.detail["accessor"])
        return None

    def last_detail(self, request_id: str, event: Event) -> tuple[str, dict[str, Any]] | None:
        for e in reversed(self.audit):
            if e.request_id == request_id and e.event == event:
                return e.actor, dict(e.detail)
        return None

    def chain_head(self) -> tuple[int, str]:
        return (len(self.audit), self.audit[-1].hash or GENESIS_HASH) if self.audit else (0, GENESIS_HASH)

    def add_message_ref(self, request_id: str, channel: str, ts: str, step: int | None = None) -> None:
        self.refs.setdefault(request_id, []).append((channel, ts, step))

    def message_refs(self, request_id: str) -> list[tuple[str, str, int | None]]:
        return self.refs.get(request_id, [])

    def ssh_key(self, user: str) -> str | None:
        return self.ssh_keys.get(user)

    def set_ssh_key(self, user: str, public_key: str, fingerprint: str, at: datetime) -> None:
        self.ssh_keys[user] = public_key

    def csr(self, user: str) -> str | None:
        return self.csrs.get(user)

    def set_csr(self, user: str, csr: str, fingerprint: str, at: datetime) -> None:
        self.csrs[user] = csr

    def healthy(self) -> bool:
        return True

    def names(self) -> list[str]:
        return [e.event for e in self.audit]


class FakeAnchor:
    """The AuditAnchor port as KV v2 behaves: every write a new version, check-and-set on the version, no delete."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.versions: list[Anchor] = []
        self.clock = clock or FakeClock()

    def write(self, seq: int, hash_: str, version: int) -> None:
        if version != len(self.versions):
            raise AnchorMoved(f"at version {len(self.versions)}, not {version}")
        self.versions.append(Anchor(seq, hash_, self.clock.now(), len(self.versions) + 1))

    def latest(self) -> Anchor | None:
        return self.versions[-1] if self.versions else None


class FakeIssuer:
    """Every kind at once: a credential is an entry in `live` until revoked; `down` makes every call fail."""

    def __init__(self) -> None:
        self.live: dict[str, tuple[str, list[str]]] = {}  # handle id -> (request id, policies)
        self.wraps: set[str] = set()  # wrapping tokens nobody has unwrapped yet, by accessor
        self.issued = 0
        self.down = False
        self.proven: list[bool] = []  # per revoke: whether the core vouched for it by the credential's seal

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        if self.down:
            raise CredentialError("vault unreachable")
        self.issued += 1
        handle = CredentialHandle(scope.credential, f"acc-{self.issued}")
        self.live[handle.id] = (order.request_id, scope.policies_granted)
        secret = f"wrap-secret-{self.issued}"
        wrapping = Wrapping(f"wrap-{self.issued}", order.until - order.ttl + timedelta(minutes=5))  # issued now
        self.wraps.add(wrapping.accessor)
        delivery = Delivery("a fake credential", code=f"bao unwrap {secret}", secret=secret)
        return IssuedCredential(handle, delivery, order.until, wrapping=wrapping)

    def wrap_status(self, accessor: str) -> CredentialStatus:
        if self.down:
            return CredentialStatus.UNKNOWN
        return CredentialStatus.ALIVE if accessor in self.wraps else CredentialStatus.GONE

    def revoke_wrap(self, accessor: str) -> None:
        if self.down:
            raise CredentialError("vault unreachable")
        self.wraps.discard(accessor)

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        if self.down:
            raise CredentialError("vault unreachable")
        self.proven.append(proven)
        owner = self.live.get(handle.id, (request_id, []))[0]
        if owner != request_id:
            raise ForeignCredential(f"{handle.id} belongs to {owner}")
        self.live.pop(handle.id, None)

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        return self.issue(order, scope)

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        if self.down:
            return CredentialStatus.UNKNOWN
        return CredentialStatus.ALIVE if handle.id in self.live else CredentialStatus.GONE

    def sync(self, catalog: Catalog) -> list[str]:
        return []

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        held = {handle.id for handle in active}
        return [CredentialHandle("vault_identity", i) for i in self.live if i not in held and i.startswith("jit-")]

    def healthy(self) -> bool:
        return not self.down


def retry_everything(exc: Exception) -> Failure:
    return Failure(type(exc).__name__)


def drain(service: ElevationService, classify: Callable[[Exception], Failure] = retry_everything) -> int:
    """Deliver every due notice, as the wiring's workers do; the number delivered or settled."""
    total = 0
    while count := delivering.run_once(service.deps, "fake-worker", classify):
        total += count
    return total


def synchronous_kick(service: ElevationService) -> Callable[[], None]:
    """The fakes deliver the outbox at once after each commit (a nested kick is left to the outer drain)."""
    busy = threading.local()

    def kick() -> None:
        if getattr(busy, "on", False):
            return
        busy.on = True
        try:
            drain(service)
        finally:
            busy.on = False

    return kick


@dataclass
class FakeNotifier:
    sent: list[tuple[str, object]] = field(default_factory=list)
    broken: bool = False
    unreachable: set[str] = field(default_factory=set)  # people Slack does not know (user_not_found)

    def _log(self, kind: str, payload: object) -> None:
        if self.broken:
            raise RuntimeError("slack is down")
        self.sent.append((kind, payload))

    def request_opened(self, request: Request, approvers: frozenset[str]) -> None:
        reached = approvers - self.unreachable
        self._log("opened", (request.id, sorted(reached)))
        if reached != approvers:
            raise Unreachable(approvers & self.unreachable, len(reached), "user_not_found")

    def approvers_notice(self, request: Request, approvers: frozenset[str], kind: str) -> None:
        self._log("notice", (request.id, sorted(approvers), kind))

    def request_changed(self, request: Request) -> None:
        self._log("changed", (request.id, request.state.value))

    def tell_requester(self, request: Request, news: Event | News, **context: object) -> None:
        self._log("told", (request.id, news))

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None:
        self._log("credential", (request.id, credential.handle.id))

    def alert(self, alert: Alert, request_id: str | None = None, **context: object) -> None:
        self._log("alert", (alert, request_id, context))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.sent]


class FakeTimer:
    """Runs `on_due(key)` for every key whose moment came, when the test advances the clock."""

    def __init__(self, clock: FakeClock, on_due: Callable[[str], None] | None = None):
        self.clock = clock
        self.on_due = on_due
        self.jobs: dict[str, datetime] = {}

    def schedule(self, key: str, when: datetime) -> None:
        self.jobs[key] = when

    def cancel(self, key: str) -> None:
        self.jobs.pop(key, None)

    def healthy(self) -> bool:
        return True

    def advance(self, delta: timedelta) -> None:
        """Move the clock and run every job that came due, in time order."""
        self.clock.advance(delta)
        while True:
            due = sorted((when, key) for key, when in self.jobs.items() if when <= self.clock.now())
            if not due:
                return
            key = due[0][1]
            del self.jobs[key]
            assert self.on_due is not None, "the test bootstrap sets on_due"
            self.on_due(key)


@dataclass
class Core:
    """The core wired on fakes: what a unit test drives and inspects."""

    service: ElevationService
    store: FakeStore
    issuer: FakeIssuer
    notifier: FakeNotifier
    timer: FakeTimer
    clock: FakeClock


def bootstrap(
    catalog: Catalog,
    *,
    clock: FakeClock | None = None,
    store: FakeStore | None = None,
    issuer: FakeIssuer | None = None,
    timer: FakeTimer | None = None,
    directory: Directory | None = None,
) -> Core:
    """The one test bootstrap: the service over honest fakes, its timer waking the service as the wiring does."""
    clock = clock or FakeClock()
    store, issuer, notifier = store or FakeStore(), issuer or FakeIssuer(), FakeNotifier()
    timer = timer or FakeTimer(clock)
    service = ElevationService(catalog, store, issuer, notifier, timer, clock, directory)
    store.clock = clock
    service.deps.kick = synchronous_kick(service)
    timer.on_due = service.wake
    return Core(service, store, issuer, notifier, timer, clock)


class InlineWork:
    """A post-ack pool that runs each job at once, so what a listener leaves for later is done when it returns."""

    def submit(self, job: Any, *args: Any) -> Future[None]:
        job(*args)
        done: Future[None] = Future()
        done.set_result(None)
        return done


class FakeTracker:
    """A ticket tracker in memory: tickets by key, the comments it received, and a switch that makes it unreachable."""

    def __init__(self, *tickets: Ticket):
        self.tickets = {t.key: t for t in tickets}
        self.comments: list[tuple[str, str]] = []
        self.down = False

    def ticket(self, key: str) -> Ticket | None:
        if self.down:
            raise TrackerUnavailable("connection refused")
        return self.tickets.get(key)

    def comment(self, key: str, text: str) -> None:
        if self.down:
            raise TrackerUnavailable("connection refused")
        self.comments.append((key, text))
