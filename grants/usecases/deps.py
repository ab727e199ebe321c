"""What every use case works with: the injected ports, and the one way to write a change (CAS, audit, timer)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from grants import deadlines, inputs
from grants.bursts import Bursts
from grants.catalog import Catalog, Scope
from grants.credentials import CredentialHandle
from grants.domain import AuditEvent, IllegalTransition, NotAllowed, NotFound, Request
from grants.lifecycle import TRAIL_EVENTS, Event, next_state
from grants.oncall import OnCallUnavailable, Shift
from grants.outbox import Alert, Notice, alert
from grants.people import People
from grants.ports import (
    AuditAnchor,
    Clock,
    ControlGroups,
    CredentialIssuer,
    Directory,
    Keys,
    Notifier,
    OnCallSource,
    OutboxStore,
    Requests,
    StepUpLinks,
    Store,
    Timer,
    Tracker,
    Trail,
)
from grants.seals import Sealer
from grants.steps import current_step

log = logging.getLogger(__name__)


# Every refusal is coalesced per burst of (who, rule, what it was about: the request, else the scope): the first of a
# burst is audited in full, the repeats are counted in one event when the burst ends (flush_refusals). Any member
# could otherwise fill the hash-chained trail with `/elevate <a scope they may not request> …` in a loop. Keying on
# what the refusal was about keeps every security refusal (self-approval, not an approver, a stale or replayed
# click, another workspace) audited in full at least once per burst for each request or scope it touched; the
# number of keys a person can make is bounded by the catalog's scopes and the requests that exist.
@dataclass
class Deps:
    """The ports, injected once; use cases are plain functions of a `Deps` and their arguments."""

    catalog: Catalog
    store: Store
    issuer: CredentialIssuer
    notifier: Notifier
    timer: Timer
    clock: Clock
    directory: Directory | None = None
    anchor: AuditAnchor | None = None  # where the chain head is written outside the database
    # How long a credential's DM may take: unsettled after that, it is replaced (unless it was unwrapped).
    deliver_within: timedelta = timedelta(seconds=15)
    # Called after every write that queued notices: wakes the outbox's delivery worker (no polling delay).
    kick: Callable[[], None] = lambda: None
    control_groups: ControlGroups | None = None  # Vault's control groups, for `approval = "vault"` scopes
    step_up_links: StepUpLinks | None = None  # the links Approve clicks on step-up scopes answer with
    trackers: Mapping[str, Tracker] = field(default_factory=dict)  # by the catalog's tracker name
    oncall: OnCallSource | None = None  # PagerDuty, for `oncall:` principals and on-call auto-approval
    sealer: Sealer | None = None  # seals each issued credential to its request (key from Vault); None: kinds look up
    people: People = field(init=False)
    bursts: Bursts = field(init=False)

    def __post_init__(self) -> None:
        self.people = People(self.catalog, self.directory, lambda schedule: frozenset(self.shifts(schedule)))
        self.bursts = Bursts()

    # the store, through the narrow port each use case needs (`store` itself is written only here) --------

    @property
    def requests(self) -> Requests:
        return self.store

    @property
    def trail(self) -> Trail:
        return self.store

    @property
    def outbox(self) -> OutboxStore:
        return self.store

    @property
    def keys(self) -> Keys:
        return self.store

    # reading ---------------------------------------------------------------------------------------

    def load(self, request_id: str) -> Request:
        request = self.requests.get(request_id.strip().upper())
        if request is None:
            raise NotFound(f"There is no request `{request_id}`.")
        return request

    def scope(self, name: str) -> Scope:
        return inputs.scope_of(self.catalog, name)

    def shifts(self, schedule: str) -> dict[str, Shift]:
        """Who is on call in `schedule` now, by Slack user ID (each person's lowest escalation level). Nobody when the
        source cannot be asked or a shift's user has no Slack ID in the catalog: on-call never widens access by guessing."""
        settings = self.catalog.settings.oncall
        if self.oncall is None or settings is None:
            return {}
        try:
            shifts = self.oncall.on_call(schedule)
        except OnCallUnavailable as exc:
            log.warning("on-call for %s unavailable: %s", schedule, exc)
            return {}
        slack_of = {account: user for user, account in settings.accounts.items()}
        found: dict[str, Shift] = {}
        for shift in sorted(shifts, key=lambda s: s.escalation_level, reverse=True):  # the lowest level is written last
            if shift.user in slack_of:
                found[slack_of[shift.user]] = shift
        return found

    def waiting_approvers(self, scope: Scope, request: Request) -> frozenset[str]:
        step = current_step(scope, request)
        if step is None:
            return frozenset()
        escalated = request.approval.escalated
        return self.people.step_approvers(step, scope, escalated) - {request.requester} - set(request.approvals)

    def seal(self, handle: CredentialHandle, request_id: str) -> str | None:
        """The seal a grant stores beside its handle (None without a seal key: the kind then proves ownership itself)."""
        return self.sealer.seal(handle, request_id) if self.sealer is not None else None

    # writing: every audited change of a request goes through the lifecycle table ----------------------

    def event(self, name: Event, request: Request, actor: str, **detail: Any) -> AuditEvent:
        return AuditEvent(
            event=name,
            at=self.clock.now(),
            actor=actor,
            request_id=request.id,
            scope=request.scope,
            subject=request.requester,
            detail=detail,
        )

    def commit(
        self, current: Request | None, updated: Request, event: Event, actor: str, wake: timedelta | None = None,
        notices: Sequence[Notice] = (), **detail: Any,
    ) -> bool:  # fmt: skip
        """The one write of a request: `current` → `updated` through the lifecycle table, with its audit event and its
        notices, in one transaction (`current` None: a new request, `requested`; may raise AlreadyOpen). False when
        someone changed it first (then nothing was written, notices included). The timer follows."""
        _lawful(current.state if current is not None else None, event, updated)
        updated = self._with_wake(updated, wake)
        expected = current.version if current is not None else None
        saved = self.store.commit(updated, self.event(event, updated, actor, **detail), notices, expected)
        if saved:
            self.arm(updated)
            self._kick(notices)
        return saved

    def enqueue(self, *notices: Notice) -> None:
        """Notices tied to no request change (alerts after a side failure): written in their own transaction."""
        self.outbox.enqueue(notices, self.clock.now())
        self._kick(notices)

    def _kick(self, notices: Sequence[Notice]) -> None:
        if notices:
            try:
                self.kick()
            except Exception:  # the rows are committed: the worker's next poll delivers them anyway
                log.exception("waking the outbox worker failed")

    def record(self, request: Request, event: Event, actor: str, **detail: Any) -> None:
        """An audit event about `request` that changes nothing in it (a refusal, a failed side revoke)."""
        _lawful(request.state, event, request)
        self.trail.record(self.event(event, request, actor, **detail))

    def reject(self, actor: str, action: str, rule: str, request: Request | None, scope: str | None = None) -> None:
        about = request.id if request is not None else (scope or "")
        if not self.bursts.first((actor, rule, about), self.clock.now()):
            return  # counted: the burst's count is written when it ends (flush_refusals)
        detail = {"action": action, "rule": rule}
        if request is None:
            self.record_trail(
                AuditEvent(event=Event.REJECTED, at=self.clock.now(), actor=actor, scope=scope, subject=actor, detail=detail)
            )
        else:
            self.record(request, Event.REJECTED, actor, **detail)

    def refuse_work(self, rule: str, kind: Alert, coalesce: bool, **detail: Any) -> None:
        """Recorded work the bot will not run (an inbox row that is forged or given up): audited as `rejected` with
        `rule`, by "system", and alerted. With `coalesce`, a burst (an insider's flood of rows) is audited and alerted
        once in full and its repeats counted (flush_refusals), like every other refusal."""
        if coalesce and not self.bursts.first(("system", rule, ""), self.clock.now()):
            return
        at = self.clock.now()
        event = AuditEvent(
            event=Event.REJECTED, at=at, actor="system", subject="system", detail={"action": "inbox", "rule": rule, **detail}
        )
        self.record_trail(event)
        self.enqueue(alert(kind, None, rule=rule, **detail))

    def flush_refusals(self) -> int:
        """Write one event per ended burst of refusals that had repeats, with how many (about its request, if any)."""
        ended = self.bursts.ended(self.clock.now())
        for (actor, rule, about), burst in ended:
            detail = {"action": "repeated", "rule": rule, "repeated": burst.repeated, "since": burst.first_at.isoformat()}
            request = self.requests.get(about) if about and about not in self.catalog.scopes else None
            if request is not None:
                self.record(request, Event.REJECTED, actor, **detail)
            else:
                scope = about or None
                event = AuditEvent(
                    event=Event.REJECTED, at=self.clock.now(), actor=actor, scope=scope, subject=actor, detail=detail
                )
                self.record_trail(event)
        return len(ended)

    def guard(self, request: Request, actor: str, action: str, check: Callable[[], None]) -> None:
        """Run a security check; a refusal is audited (actor = who tried) before it reaches the person."""
        try:
            check()
        except NotAllowed as refusal:
            self.reject(actor, action, refusal.rule, request)
            raise

    def record_trail(self, event: AuditEvent) -> AuditEvent:
        """An event about the trail itself or about no request (exports, refusals before a request exists)."""
        return append_trail(self.trail, event)

    # timers -------------------------------------------------------------------------

    def arm(self, request: Request) -> None:
        if request.wake_at is None:
            self.timer.cancel(request.id)
        else:
            self.timer.schedule(request.id, request.wake_at)

    def _with_wake(self, request: Request, delay: timedelta | None = None) -> Request:
        wake = deadlines.next_wake(self.catalog.scopes.get(request.scope), request)
        if delay is not None:
            wake = self.clock.now() + delay
        return replace(request, wake_at=wake)


def append_trail(trail: Trail, event: AuditEvent) -> AuditEvent:
    """The one writer of events that change no request (`Deps.record_trail`, and the CLI's export, which has no Deps):
    an event that concerns a request must go through the lifecycle table with its change instead."""
    if event.event not in TRAIL_EVENTS:
        raise IllegalTransition(f"`{event.event}` concerns a request; write it with its change")
    return trail.record(event)


def _lawful(state: Any, event: Event, updated: Request) -> None:
    """The lifecycle table is the law: the change must be one it allows, landing where it says."""
    to = next_state(state, event)
    if to is None or to is not updated.state:
        raise IllegalTransition(f"{updated.id}: `{event}` from {state} to {updated.state} is not in the lifecycle table")
