"""ElevationService: the thin facade the Slack side calls; each method is one use case over the injected ports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import IO, Any

from grants import inputs
from grants.approval_catalog import needs_step_up
from grants.audit import AuditQuery, Verdict
from grants.catalog import Catalog
from grants.credentials import CredentialError
from grants.csr import Csr
from grants.domain import InvalidRequest, Request, split_decision
from grants.outbox import Alert
from grants.people import People
from grants.ports import (
    Approver,
    AuditAnchor,
    Clock,
    ControlGroups,
    CredentialIssuer,
    Directory,
    Notifier,
    OnCallSource,
    StepUpLinks,
    Store,
    Timer,
    Tracker,
)
from grants.seals import Sealer
from grants.signin import SignIn
from grants.ssh_keys import SshPublicKey
from grants.steps import current_step
from grants.stepup import StepUpLink
from grants.usecases import (
    auditing,
    deciding,
    extending,
    granting,
    queries,
    requesting,
    reviewing,
    sshkeys,
    stepping,
    timing,
    watching,
)
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
        *,
        kick: Callable[[], None] = lambda: None,
        control_groups: ControlGroups | None = None,
        sealer: Sealer | None = None,
        step_up_links: StepUpLinks | None = None,
        trackers: Mapping[str, Tracker] | None = None,
        oncall: OnCallSource | None = None,
    ):
        self.deps = Deps(
            catalog, store, issuer, notifier, timer, clock, directory, anchor, kick=kick, control_groups=control_groups,
            sealer=sealer, step_up_links=step_up_links, trackers=trackers or {}, oncall=oncall,
        )  # fmt: skip
        self._anchoring = auditing.Anchoring()
        self._born = clock.now()
        self._anchor_watch = auditing.AnchorWatch(self._born)

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
        start_text: str | None = None,
        request_id: str | None = None,
    ) -> Request:
        return requesting.request(
            self.deps, requester, scope_name, duration_text, reason, on_behalf_of, defer_issue, start_text, request_id
        )

    def plan(
        self,
        requester: str,
        scope_name: str,
        duration_text: str | None,
        reason: str,
        on_behalf_of: str | None = None,
        request_id: str | None = None,
        start_text: str | None = None,
    ) -> Request:
        return requesting.plan(self.deps, requester, scope_name, duration_text, reason, on_behalf_of, request_id, start_text)

    def register_ssh_key(self, user: str, public_key: str) -> SshPublicKey:
        return sshkeys.register(self.deps, user, public_key)

    def ssh_key(self, user: str) -> SshPublicKey | None:
        return sshkeys.registered(self.deps, user)

    def register_csr(self, user: str, csr: str) -> Csr:
        return sshkeys.register_csr(self.deps, user, csr)

    def csr(self, user: str) -> Csr | None:
        return sshkeys.registered_csr(self.deps, user)

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

    def approve(self, decision: str, actor: str, sign_in: SignIn | None = None, duration_text: str | None = None) -> Request:
        """`decision` is what the button was shown for (`JIT-…:r`, `JIT-…:e7`; a bare ID means the request). The use
        case checks it on the row its compare-and-swap writes over, not on an earlier read. `sign_in`: the step-up
        page's evidence (a step-up scope refuses an approval without it). `duration_text`: approve for less."""
        request_id, shown_for = split_decision(decision)
        if shown_for.startswith("e"):
            if duration_text:
                raise InvalidRequest("An extension is approved as asked; deny it and let the requester ask for less.")
            return extending.approve(self.deps, request_id, actor, shown_for)
        duration = inputs.parsed_duration(duration_text) if duration_text else None
        return deciding.approve(self.deps, request_id, actor, shown_for, sign_in, duration)

    def check_approve(self, decision: str, actor: str) -> Request:
        """Would `actor` be let approve `decision` now (audited refusals, nothing written otherwise)?"""
        request_id, shown_for = split_decision(decision)
        return deciding.check_approve(self.deps, request_id, actor, shown_for)

    def needs_step_up(self, request: Request) -> bool:
        """Whether the approval `request` waits for must come with a sign-in on the step-up page."""
        scope = self.deps.catalog.scopes.get(request.scope)
        return scope is not None and needs_step_up(scope, current_step(scope, request))

    # step-up: an Approve click on a step-up scope answers with a link; the page signs the approver in, then approves --

    def offer_step_up(self, decision: str, actor: str, duration_text: str | None = None) -> str | None:
        """The link's secret when approving `decision` needs a sign-in (None: approve as usual); refusals audited.
        `duration_text` (approve for less) is refused before any link is made: the page approves what it was opened for."""
        request_id, shown_for = split_decision(decision)
        if shown_for.startswith("e"):
            return None
        request = deciding.check_approve(self.deps, request_id, actor, shown_for)
        if not self.needs_step_up(request):
            return None
        if duration_text:
            raise InvalidRequest("Approve for less is not available where approving needs a sign-in; use Approve.")
        return stepping.offer(self.deps, request, f"{request.id}:{shown_for}", actor)

    def step_up_link(self, secret: str) -> tuple[StepUpLink, Request]:
        """The link and its request, while the link's approver may still approve it (refusals audited)."""
        link = stepping.opened(self.deps, secret)
        request_id, shown_for = split_decision(link.decision)
        return link, deciding.check_approve(self.deps, request_id, link.slack_user, shown_for)

    def begin_step_up(self, secret: str, state: str, browser: str) -> StepUpLink:
        return stepping.begin(self.deps, secret, state, browser)

    def arrive_step_up(self, state: str, browser: str) -> StepUpLink:
        return stepping.arrive(self.deps, state, browser)

    def refuse_step_up(self, link: StepUpLink, rule: str) -> None:
        stepping.refused(self.deps, link, rule)

    def approve_signed_in(self, link: StepUpLink, approver: Approver) -> Request:
        """Approve as the link's approver, who just signed in: on a vault-enforced scope their own Vault identity
        authorizes the control group first (the bot's token cannot); then the core records it with the evidence."""
        request_id, shown_for = split_decision(link.decision)
        request = deciding.check_approve(self.deps, request_id, link.slack_user, shown_for)
        if self.deps.scope(request.scope).vault_enforced:
            try:
                approver.authorize(request.id)
            except CredentialError as refused:
                stepping.vault_refused(self.deps, link, request, str(refused))
        mfa = self.deps.catalog.settings.step_up.mfa
        sign_in = SignIn(link.slack_user, approver.entity_id, approver.issuer, approver.subject, self.deps.clock.now(), mfa)
        return deciding.approve(self.deps, request_id, link.slack_user, shown_for, sign_in)

    def may_decide(self, decision: str, actor: str) -> bool:
        """Whether `deny(decision, actor)` would be considered now (read-only; the deny itself checks and audits)."""
        request_id, shown_for = split_decision(decision)
        return deciding.may_decide(self.deps, request_id, actor, shown_for)

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

    def reconcile(self) -> dict[str, int]:
        return timing.reconcile(self.deps)

    def watch_tickets(self) -> list[Request]:
        return watching.watch_tickets(self.deps)

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

    def refuse_forged_work(self, **detail: Any) -> None:
        """An inbox row without a MAC the gate made (someone wrote it into the database): never run, audited
        (`rejected`, `inbox_forged`) and alerted; a flood of them is counted, not written out row by row."""
        self.deps.refuse_work("inbox_forged", Alert.INBOX_FORGED, True, **detail)

    def give_up_work(self, **detail: Any) -> None:
        """An inbox row claimed past its attempts (its work killed the process each time): settled unrun, audited
        (`rejected`, `inbox_attempts`) and alerted."""
        self.deps.refuse_work("inbox_attempts", Alert.INBOX_GAVE_UP, False, **detail)

    def require_auditor(self, user: str, action: str) -> None:
        queries.require_auditor(self.deps, user, action)

    def export(self, actor: str, query: AuditQuery, out: IO[str], fmt: str, **context: Any) -> int:
        """Stream the audit trail to `out`; the export is itself an audited event."""
        return auditing.export(self.deps.trail, self.deps.clock, actor, query, out, fmt, **context)

    def verify(self) -> Verdict:
        return auditing.verify_trail(self.deps.trail, self.deps.anchor)

    def anchor_chain(self) -> None:
        """Write the chain head outside the database whenever it moved, only over an anchor the stored chain still
        continues; any worker may (KV check-and-set: a slower one never puts an older head over a newer one)."""
        if self.deps.anchor is None:
            return
        try:
            self._anchoring = auditing.anchor_chain(self.deps, self.deps.anchor, self._anchoring)
        except Exception as exc:
            self._anchor_watch = auditing.watch_anchor(self.deps, self._anchor_watch, str(exc) or type(exc).__name__)
            raise
        refused = (
            "it refuses to anchor a trail that no longer continues the anchor"
            if self._anchoring.refused_over is not None
            else None
        )
        self._anchor_watch = auditing.watch_anchor(self.deps, self._anchor_watch, refused)

    def anchor_up(self) -> bool:
        """The anchor vouches for the trail as it was a minute ago (`/healthz` anchor, jitbot_audit_anchor_up). Read
        from Vault and the database, not from this process's own attempts, so every replica answers alike."""
        if self.deps.anchor is None:
            return True
        return not auditing.unvouched(self.deps.trail, self.deps.anchor.latest(), self.deps.clock.now(), self._born)
