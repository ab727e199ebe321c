"""ElevationService: the thin facade the Slack side calls; each method is one use case over the injected ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

from grants.audit import AuditQuery, Verdict
from grants.catalog import Catalog
from grants.domain import Request, split_decision
from grants.people import Directory, People
from grants.ports import AuditAnchor, Clock, CredentialIssuer, Notifier, Store, Timer
from grants.ssh_keys import SshPublicKey
from grants.usecases import auditing, deciding, expiring, extending, granting, queries, requesting, reviewing, sshkeys, timing
from grants.usecases.deps import Deps


class ElevationService:
    """One object with injected ports; every state change is a CAS that writes its audit event."""

    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        issuer: CredentialIssuer,
        notifier: Notifier,
        timer: Timer,
        clock: Clock,
        directory: Directory | None = None,
        anchor: AuditAnchor | None = None,
    ):
        self.deps = Deps(catalog, store, issuer, notifier, timer, clock, directory, anchor)
        self._anchoring = auditing.Anchoring()

    @property
    def catalog(self) -> Catalog:
        return self.deps.catalog

    @property
    def people(self) -> People:
        return self.deps.people

    @property
    def clock(self) -> Clock:
        return self.deps.clock

    # asking ---------------------------------------------------------------------------------------------

    def request(
        self,
        requester: str,
        scope_name: str,
        duration_text: str | None,
        reason: str,
        on_behalf_of: str | None = None,
        defer_issue: bool = False,
    ) -> Request:
        return requesting.request(self.deps, requester, scope_name, duration_text, reason, on_behalf_of, defer_issue)

    def register_ssh_key(self, user: str, public_key: str) -> SshPublicKey:
        return sshkeys.register(self.deps, user, public_key)

    def ssh_key(self, user: str) -> SshPublicKey | None:
        return sshkeys.registered(self.deps, user)

    def break_glass(
        self, requester: str, scope_name: str, duration_text: str | None, reason: str, defer_issue: bool = False
    ) -> Request:
        return requesting.break_glass(self.deps, requester, scope_name, duration_text, reason, defer_issue)

    def issue_approved(self, request_id: str) -> Request:
        """Issue what was approved but deferred (auto-approval, break-glass) once Slack has been answered."""
        return granting.issue_approved(self.deps, self.deps.load(request_id))

    def extend(self, request_id: str, actor: str, duration_text: str | None = None) -> Request:
        return extending.extend(self.deps, request_id, actor, duration_text)

    # deciding: a click on Approve/Deny decides exactly what its button was shown for (the request or one extension ask) --

    def approve(self, decision: str, actor: str) -> Request:
        """`decision` is what the button was shown for (`JIT-…:r`, `JIT-…:e7`; a bare ID means the request). The use
        case checks it on the row its compare-and-swap writes over, not on an earlier read."""
        request_id, shown_for = split_decision(decision)
        if shown_for.startswith("e"):
            return extending.approve(self.deps, request_id, actor, shown_for)
        return deciding.approve(self.deps, request_id, actor, shown_for)

    def deny(self, decision: str, actor: str, reason: str = "") -> Request:
        request_id, shown_for = split_decision(decision)
        if shown_for.startswith("e"):
            return extending.deny(self.deps, request_id, actor, shown_for, reason)
        return deciding.deny(self.deps, request_id, actor, reason, shown_for)

    def cancel(self, request_id: str, actor: str) -> Request:
        return deciding.cancel(self.deps, request_id, actor)

    def revoke(self, request_id: str, actor: str) -> Request:
        return deciding.revoke(self.deps, request_id, actor)

    def nudge(self, request_id: str, actor: str) -> Request:
        return requesting.nudge(self.deps, request_id, actor)

    def review(self, request_id: str, actor: str, outcome: str, note: str = "") -> Request:
        return reviewing.review(self.deps, request_id, actor, outcome, note)

    # time ------------------------------------------------------------------------------------------------

    def wake(self, request_id: str) -> None:
        timing.wake(self.deps, request_id)

    def wake_many(self, request_ids: Sequence[str]) -> None:
        expiring.wake_many(self.deps, request_ids)

    def reconcile(self) -> dict[str, int]:
        return timing.reconcile(self.deps)

    def arm_due(self, horizon: datetime) -> int:
        return timing.arm_due(self.deps, horizon)

    # reading -----------------------------------------------------------------------------------------------

    def get(self, request_id: str) -> Request:
        return self.deps.load(request_id)

    def mine(self, user: str) -> list[Request]:
        return queries.mine(self.deps, user)

    def waiting_on(self, user: str) -> list[Request]:
        return queries.waiting_on(self.deps, user)

    def open_reviews(self, user: str | None = None) -> list[Request]:
        return queries.open_reviews(self.deps, user)

    # the audit trail -----------------------------------------------------------------------------------------

    def flush_refusals(self) -> int:
        """Write the counts of refusal bursts that have ended (every replica, about once a second)."""
        return self.deps.flush_refusals()

    def refuse(self, actor: str, action: str, rule: str) -> None:
        """Audit a refusal made at the edge (a replayed body, another workspace): the trail keeps one writer."""
        self.deps.reject(actor, action, rule, None)

    def require_auditor(self, user: str, action: str) -> None:
        queries.require_auditor(self.deps, user, action)

    def export(self, actor: str, query: AuditQuery, out: IO[str], fmt: str, **context: Any) -> int:
        """Stream the audit trail to `out`; the export is itself an audited event."""
        return auditing.export(self.deps.store, self.deps.clock, actor, query, out, fmt, **context)

    def verify(self) -> Verdict:
        return auditing.verify_trail(self.deps.store, self.deps.anchor)

    def anchor_chain(self) -> None:
        """The leader writes the chain head outside the database whenever it moved (about every second), only over
        an anchor the stored chain still continues."""
        if self.deps.anchor is not None:
            self._anchoring = auditing.anchor_chain(self.deps, self.deps.anchor, self._anchoring)
