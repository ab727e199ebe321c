"""The core's ports, all of them: every Protocol the core needs the outside (or an adapter) to implement."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from grants.audit import Anchor, AuditQuery
from grants.audit_stream import Cursor
from grants.catalog import Catalog, Scope
from grants.credentials import CredentialHandle, CredentialStatus, IssuedCredential, IssueOrder, Orphan
from grants.domain import AuditEvent, Request, State
from grants.inbox import Received, Work
from grants.lifecycle import Event
from grants.oncall import Shift
from grants.outbox import Alert, Entry, News, Notice
from grants.stepup import StepUpLink
from grants.tickets import Ticket


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, tz-aware UTC."""
        ...


class OutboxStore(Protocol):
    """The store's side of the outbox: claim due rows (in order per request), settle them."""

    def enqueue(self, notices: Iterable[Notice], at: datetime) -> None:
        """Write notices in their own transaction (those tied to no request change)."""
        ...

    def claim(self, worker: str, now: datetime, limit: int) -> list[Entry]:
        """Due rows no other live worker holds and with no earlier undelivered row of the same request."""
        ...

    def delivered(self, entry_id: int, at: datetime) -> None: ...

    def renew_claims(self, worker_prefix: str, now: datetime) -> int:
        """Extend the live claims of this process's workers (a heartbeat); the number renewed."""
        ...

    def retry_at(self, entry_id: int, when: datetime) -> None:
        """Count an attempt, release the claim, and make the row due again at `when`."""
        ...

    def failed(self, entry_id: int, at: datetime) -> None:
        """Give up on the row: it no longer holds up later notices of its request."""
        ...

    def settle_credential(self, request_id: str, accessor: str, at: datetime) -> None:
        """The credential with `accessor` reached its person: its pending check (whatever else it holds) is done."""
        ...


class Requests(Protocol):
    """Requests as stored, read: by ID, by filters, counted (every write goes through `Writes`)."""

    def get(self, request_id: str) -> Request | None: ...

    def find(
        self,
        *,
        states: Collection[State] | None = None,
        requester: str | None = None,
        scopes: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[Request]: ...

    def count_requests(self, requester: str, since: datetime) -> int:
        """How many requests (of any state) this person made since `since`."""
        ...

    def open_reviews(self) -> list[Request]:
        """Break-glass grants whose post-hoc review is still open."""
        ...


class Writes(Protocol):
    """The unit of work: a request's change, its audit event and its notices written in one transaction, all or none."""

    def commit(
        self, request: Request, event: AuditEvent, notices: Sequence[Notice] = (), expected_version: int | None = None
    ) -> bool:
        """Write `request`, its audit event and its notices in one transaction. `expected_version` None: a new request,
        inserted (AlreadyOpen when the requester already has one open for that scope: the store checks, so concurrent
        twins cannot both get in). Otherwise a compare-and-swap: written only if the stored version is still
        `expected_version`; False, and nothing written, when someone changed it first."""
        ...


class Trail(Protocol):
    """The hash-chained audit trail: events that change no request are appended here; every event is read here."""

    def record(self, event: AuditEvent) -> AuditEvent:
        """Append one audit event that changes no request (rejections, exports, failures)."""
        ...

    def events(self, query: AuditQuery) -> Iterator[AuditEvent]:
        """Audit events in `seq` order, streamed."""
        ...

    def event_rows(self, query: AuditQuery) -> Iterator[Sequence[Any]]:
        """The same events as stored rows (detail as its JSON text), so an export need not decode them."""
        ...

    def csv_lines(self, query: AuditQuery) -> Iterator[tuple[str, int]] | None:
        """CSV lines (chunk, rows in it) built by the database itself where it can; None where it cannot."""
        ...

    def chain_head(self) -> tuple[int, str]:
        """The last seq and hash the chain head records (0 and the genesis hash when empty)."""
        ...

    def audited_credential(self, request_id: str) -> str | None:
        """The credential ID the trail last recorded for this request (`issued`, `extended`, `reissued`): what the
        hash-chained trail says, as opposed to the request row, which an insider could rewrite."""
        ...

    def last_detail(self, request_id: str, event: Event) -> tuple[str, dict[str, Any]] | None:
        """The actor and detail of the last `event` the trail recorded for this request, or None."""
        ...


class Keys(Protocol):
    """What requesters register for the kinds that certify it: SSH public keys and CSRs."""

    def ssh_key(self, user: str) -> str | None:
        """The public key line `user` registered for ssh scopes, or None."""
        ...

    def set_ssh_key(self, user: str, public_key: str, fingerprint: str, at: datetime) -> None:
        """Register (or replace) `user`'s SSH public key."""
        ...

    def csr(self, user: str) -> str | None:
        """The PEM certificate signing request `user` registered for pki scopes, or None."""
        ...

    def set_csr(self, user: str, csr: str, fingerprint: str, at: datetime) -> None:
        """Register (or replace) `user`'s CSR."""
        ...


class Store(Requests, Writes, Trail, OutboxStore, Keys, Protocol):
    """The whole store as the wiring builds it: every port above on one database. Use cases reach it only through
    the narrow ports (`Deps.requests`, `.trail`, `.outbox`, `.keys`); `Deps` alone writes through `Writes`."""

    def healthy(self) -> bool: ...


class CredentialIssuer(Protocol):
    """Every credential kind behind one port (grants.credentials.CredentialKinds dispatches by kind)."""

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        """Create a credential for exactly `scope`, living until `order.until`."""
        ...

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        """End a credential; one that is already gone counts as success. `proven`: its seal was checked (grants/seals.py)."""
        ...

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential: ...

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus: ...

    def sync(self, catalog: Catalog) -> list[str]: ...

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        """Credentials of kinds that do not end by themselves which no active grant holds (for reconcile)."""
        ...

    def healthy(self) -> bool: ...

    def wrap_status(self, accessor: str) -> CredentialStatus:
        """Whether the response-wrapping token with `accessor` can still be unwrapped (ALIVE: nobody has)."""
        ...

    def revoke_wrap(self, accessor: str) -> None:
        """End a response-wrapping token by accessor (gone is success); CredentialError when the backend refuses."""
        ...


class ControlGroups(Protocol):
    """Vault's control groups for `approval = "vault"` scopes: the pending request Vault holds for each grant."""

    def open(self, order: IssueOrder, scope: Scope) -> None:
        """Make the grant's call with the bot's token so that Vault holds it for the approvers; CredentialError if not."""
        ...

    def missing_approvers(self, scope_name: str, approvers: Collection[str]) -> list[str]:
        """The approvers Vault would not count (no entity linked to their Slack ID, or not in the scope's group)."""
        ...

    def discard(self, request_id: str) -> None:
        """End a request Vault holds (denied, cancelled, timed out); nothing there is fine."""
        ...


class Tracker(Protocol):
    """A ticket tracker (Redmine, Jira): the tickets that justify grants, and comments on them."""

    def ticket(self, key: str) -> Ticket | None:
        """The ticket now; None when there is no such ticket; TrackerUnavailable when the tracker cannot say."""
        ...

    def comment(self, key: str, text: str) -> None:
        """Add a comment to the ticket (plain text); TrackerUnavailable when it was not added."""
        ...


class OnCallSource(Protocol):
    """Who is on call (PagerDuty): the shifts of a schedule now."""

    def on_call(self, schedule: str) -> list[Shift]:
        """Every shift of `schedule` that holds now (all escalation levels); OnCallUnavailable when it cannot say."""
        ...


class Notifier(Protocol):
    """Tells people what happened; failures here never undo a decision."""

    def request_opened(self, request: Request, approvers: frozenset[str]) -> None: ...

    def approvers_notice(self, request: Request, approvers: frozenset[str], kind: str) -> None:
        """A reminder, escalation, break-glass notice, review reminder or extension request for approvers."""
        ...

    def request_changed(self, request: Request) -> None:
        """Re-render every message about `request` from its current state."""
        ...

    def tell_requester(self, request: Request, news: Event | News, **context: object) -> None: ...

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None:
        """Send the credential now, in the caller's thread; raises when it did not reach the person. It is never
        queued: the secret must not be at rest (the outbox holds only a check that replaces it if undelivered)."""
        ...

    def alert(self, alert: Alert, request_id: str | None = None, **context: object) -> None:
        """Tell the operators (the alert channel, the log); `context` holds IDs and plain text, never markup."""
        ...


class AuditAnchor(Protocol):
    """Somewhere outside the database that remembers the chain head: the bot may write it, not delete it."""

    def write(self, seq: int, hash_: str, version: int) -> None:
        """Write the head over the anchor's `version` (0: none yet), or raise AnchorMoved when it is no longer that."""
        ...

    def latest(self) -> Anchor | None:
        """The newest anchor, timed by the outside store's own clock; None when none was ever written."""
        ...


class DueClaims(Protocol):
    """Requests whose next deadline has come, claimed with a lease by the worker that runs them (any worker)."""

    def claim(self, worker: str, now: datetime, limit: int, done: Sequence[str] = ()) -> list[str]:
        """Up to `limit` due request IDs nobody else holds (soonest first), now leased to `worker`; in the same
        transaction, `worker` lets go of `done` (what its last round finished: one write fewer per round)."""
        ...

    def let_go(self, worker: str, request_ids: Sequence[str], not_before: datetime | None = None) -> None:
        """End `worker`'s leases; with `not_before`, the rows are claimable again only from then."""
        ...

    def next_due(self, now: datetime) -> datetime | None:
        """The soonest deadline that no live lease holds, or None."""
        ...

    def renew(self, worker_prefix: str, now: datetime) -> int:
        """This process's heartbeat: extend the leases of every worker name starting with `worker_prefix`."""
        ...


class Timer(Protocol):
    """Wakes this process's claim loop at a moment; the database says what is due then and who runs it."""

    def schedule(self, key: str, when: datetime) -> None:
        """Something (`key`, a request ID) falls due at `when` (at once if past): wake up no later than that."""
        ...

    def cancel(self, key: str) -> None: ...

    def healthy(self) -> bool: ...


class CredentialKind(Protocol):
    """One kind of credential (one adapter per kind), registered by its `kind` name."""

    kind: str

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        """Create a credential for exactly `scope`, ending by itself at `order.until` where the kind can."""
        ...

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        """End it now. Already gone counts as success; one that is not `request_id`'s raises ForeignCredential.
        `proven`: the core checked the credential's seal (grants/seals.py), so a lookup that would only prove
        ownership is skipped; False (no seal, an older row, a bad seal): the kind proves it as before."""
        ...

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        """Make access last until `order.until`: re-issue (the old one is revoked by the caller when the
        returned handle differs) or stretch in place (same handle)."""
        ...

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        """For reconcile: does the credential still exist?"""
        ...

    def sync(self, catalog: Catalog) -> list[str]:
        """Write what this kind needs in Vault for the catalog's scopes (roles, reader policies); lines say what changed."""
        ...

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        """This kind's credentials that no handle in `active` holds and that would not end by themselves;
        [] for kinds whose credentials die on their own (TTL, validity)."""
        ...


class Wrappings(Protocol):
    """Response-wrapping tokens by accessor: whether one can still be unwrapped, and ending one that can."""

    def status(self, accessor: str) -> CredentialStatus:
        """ALIVE: nobody has unwrapped it yet; GONE: unwrapped (or expired); UNKNOWN: the backend could not say."""
        ...

    def revoke(self, accessor: str) -> None:
        """End it, so it can never be unwrapped; already gone counts as success."""
        ...


class Directory(Protocol):
    def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        """The members of a Slack user group (cached by the adapter)."""
        ...


class Inbox(Protocol):
    def receive(self, key: str, until: datetime, work: Work | None, worker: str | None, now: datetime) -> int | None:
        """Record a received event in one insert: its key (the replay record, kept at least until `until`) and its
        work, claimed by `worker` when this process runs it at once (None: any worker claims it). The row's ID, or
        None when the key was recorded before (a replay or a retry, by any replica)."""
        ...

    def claim_received(self, worker: str, now: datetime, limit: int) -> list[Received]:
        """Rows with work not done whose lease is free or lapsed (their worker died or stopped), oldest first; each
        claim counts an attempt, and a row whose MAC does not prove the gate recorded it comes back not `genuine`."""
        ...

    def done(self, entry_id: int, at: datetime) -> None:
        """The work ran: its arguments are dropped (the key stays as the replay record until it expires)."""
        ...


class Sink(Protocol):
    """A collector: `send` returns only once the batch is taken (syslog: the collector's TCP stack has it; webhook: 2xx)."""

    name: str

    def fresh(self) -> bool:
        """The next send opens a new connection (the last one broke): what it may have lost is sent again."""
        ...

    def send(self, lines: list[str]) -> None: ...

    def close(self) -> None: ...


class StreamStore(Protocol):
    """The store's side of the stream: one claimed cursor row per sink, and the export's lines after a seq."""

    def ensure_streams(self, names: list[str], now: datetime) -> None: ...

    def claim_stream(self, name: str, worker: str, now: datetime) -> Cursor | None:
        """The sink's cursor, leased to `worker` (None when another live worker holds it or it is not due)."""
        ...

    def renew_streams(self, worker_prefix: str, now: datetime) -> int: ...

    def lines_after(self, seq: int, limit: int) -> list[tuple[int, datetime, str]]:
        """Up to `limit` events after `seq`, in seq order: (seq, at, the JSONL export's line for it)."""
        ...

    def advance_stream(self, name: str, worker: str, cursor: Cursor, now: datetime) -> bool:
        """Record the new cursor and release the lease, only if `worker` still holds it (False: it was taken over)."""
        ...

    def retry_stream(self, name: str, worker: str, when: datetime, cursor: Cursor, attempts: int) -> None: ...

    def stream_lag(self) -> dict[str, tuple[int, float]]:
        """Per sink: events behind the chain head and the age in seconds of the oldest undelivered one."""
        ...


class StepUpLinks(Protocol):
    """Where links live (the database: a link made by one process is followed on another)."""

    def add(self, link: StepUpLink) -> None: ...

    def get(self, key: str) -> StepUpLink | None: ...

    def begin(self, key: str, state: str, browser: str, now: datetime) -> bool:
        """Mark the link used for the sign-in `state` from `browser`, only if it was unused (compare-and-swap)."""
        ...

    def finish(self, state: str) -> StepUpLink | None:
        """The link of sign-in `state`, once: a second call finds nothing (the link stays used)."""
        ...


class Approver(Protocol):
    """An approver who just signed in: their evidence, and the one thing their short-lived Vault token may do."""

    entity_id: str
    issuer: str
    subject: str

    def authorize(self, request_id: str) -> bool:
        """Authorize the control-group request of `request_id` with the approver's own token; CredentialError when
        Vault refused it or did not count this approver (their entity is not in the step's group)."""
        ...


class SignInFlow(Protocol):
    """The sign-in the page runs (Vault's OIDC auth method against the IdP: authorization code + PKCE)."""

    def begin(self, client_nonce: str) -> tuple[str, str]:
        """The IdP's authorization URL to send the browser to, and the flow's state."""
        ...

    def idp_origin(self) -> str:
        """The IdP's origin (the page's Content-Security-Policy lets its form lead there, nowhere else)."""
        ...

    def complete(self, state: str, code: str, client_nonce: str, slack_user: str) -> AbstractContextManager[Approver]:
        """The approver behind `code`, only if they are `slack_user`'s Vault entity (SignInRefused otherwise); their
        token is revoked when the block ends. Vault checks the ID token: signature, issuer, audience, nonce, expiry and
        the sign-in's age (max_age)."""
        ...
