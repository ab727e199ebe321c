"""Time: what a timer does when it wakes for a request, and reconciling after downtime."""

from __future__ import annotations

from datetime import datetime, timedelta

from grants import policy
from grants.catalog import Scope
from grants.domain import (
    Request,
    State,
)
from grants.service_core import STUCK_APPROVAL_AFTER, ServiceCore


class WakeUps(ServiceCore):
    """The timers' side of the service: the database says what is due, the timer only wakes us."""

    def wake(self, request_id: str) -> None:
        """A timer fired: do whatever is due for this request, one step at a time, until nothing is due."""
        for _ in range(10):  # a reminder and an escalation (say) can fall due together after downtime
            if not self._wake_once(request_id):
                return

    def _wake_once(self, request_id: str) -> bool:
        """Handle the one thing due now; True when something was done (and more may be due)."""
        request = self.store.get(request_id)
        if request is None:
            return False
        now, scope = self.clock.now(), self.catalog.scopes.get(request.scope)
        if request.wake_at is None or now < request.wake_at:
            self._arm(request)  # woken early (or nothing left): sleep until the real deadline
            return False
        if request.state is State.PENDING:
            self._wake_pending(request, scope, now)
        elif request.state is State.ACTIVE and request.expires_at is not None and now >= request.expires_at:
            self._end(request, State.EXPIRED, "system")
        elif request.state is State.ACTIVE and scope is not None and (at := policy.warning_at(scope, request)) and now >= at:
            updated = request.changed(warned=True)
            if self._save(updated, request, "expiry_warned", "system", expires_at=str(request.expires_at)):
                self._notify(
                    self.notifier.tell_requester, updated, "expiring", can_extend=bool(policy.extension_room(scope, updated))
                )
        elif request.review_state == "open" and request.review_due_at and now >= request.review_due_at and scope is not None:
            glass = scope.break_glass
            updated = request.changed(review_due_at=now + (glass.review_delta if glass else timedelta(hours=24)))
            if self._save(updated, request, "review_reminded", "system"):
                self._notify(
                    self.notifier.approvers_notice, updated, self.people.approvers(scope) - {request.requester}, "review"
                )
        else:
            self._arm(request)
            return False
        # Each successful save above re-armed the request for its next deadline; a lost race left it to the winner.
        return True

    def _wake_pending(self, request: Request, scope: Scope | None, now: datetime) -> None:
        if now >= request.pending_until or scope is None:
            updated = request.moved(State.TIMED_OUT, ended_at=now)
            if self._save(updated, request, "timed_out", "system"):
                self._notify(self.notifier.request_changed, updated)
                self._notify(self.notifier.tell_requester, updated, "timed_out")
        elif (at := policy.escalation_at(scope, request)) and now >= at:
            updated = request.changed(escalated=True)
            escalation = self.people.members(scope.escalation) - {request.requester}
            if self._save(updated, request, "escalated", "system", to=sorted(escalation)):
                self._notify(self.notifier.approvers_notice, updated, escalation, "escalation")
        elif (at := policy.next_reminder(scope, request)) and now >= at:
            updated = request.changed(reminders_sent=request.reminders_sent + 1)
            if self._save(updated, request, "reminded", "system", reminder=updated.reminders_sent):
                self._notify(self.notifier.approvers_notice, updated, self._waiting_approvers(scope, updated), "reminder")

    def reconcile(self) -> dict[str, int]:
        """Bring the world in line with the database: the bot may have been down for a while."""
        now = self.clock.now()
        counts = {"woken": 0, "retried": 0}
        for request in self.store.due(now):
            self._arm(request)  # due now: the timer runs it at once, on the timer's workers, never twice
            counts["woken"] += 1
        for request in self.store.find(states=(State.APPROVED,)):
            # An approval older than this was interrupted between the decision and Vault.
            if request.decided_at is not None and now - request.decided_at >= STUCK_APPROVAL_AFTER:
                self._issue(request)
                counts["retried"] += 1
        return counts

    def arm_due(self, horizon: datetime) -> int:
        """Arm exact timers for whatever falls due before `horizon`, whichever replica wrote it."""
        due = self.store.due(horizon)
        for request in due:
            self._arm(request)
        return len(due)
