"""The inbox's worker: runs the work recorded with each acked request, at once here or, after a crash, by claim."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor

from bot.context import BotContext
from bot.gate import Admitted
from bot.listeners.deferred import task_of
from grants.claiming import ClaimLoop, process_name
from grants.inbox import MAX_ATTEMPTS, Received, Work
from grants.ports import Clock, Inbox

log = logging.getLogger(__name__)
TAKE = "inbox-take"  # the worker name under which this process records the work it runs at once


def taker() -> str:
    """The name this process's gate claims its own work as: covered by this process's heartbeat (its prefix)."""
    return f"{process_name()}-{TAKE}"


class InboxWorker(ClaimLoop):
    """`take` runs what this process just recorded (claimed by it already, so no other worker starts it); the claim
    threads take rows whose lease lapsed (the process that recorded them died or stopped) and rows another process
    recorded for a worker. Each row's work runs once per claim and the row is then done; a crash in between leaves
    it claimed until the lease lapses, and it runs again (the use cases are compare-and-swap: once in effect)."""

    def __init__(
        self, ctx: BotContext, inbox: Inbox, clock: Clock, renew: Callable[[str], int], pool: Executor, *,
        threads: int = 2, poll: float = 1.0, heartbeat: float = 10 / 3,
    ) -> None:  # fmt: skip
        self.ctx, self.inbox, self.clock, self.pool = ctx, inbox, clock, pool
        super().__init__("inbox", self._round, renew, threads=threads, poll=poll, heartbeat=heartbeat)

    def take(self, admitted: Admitted) -> None:
        if admitted.entry is not None and admitted.work is not None:
            self.pool.submit(self._carry_out, admitted.entry, admitted.work)

    def _carry_out(self, entry: int, work: Work) -> None:
        self.ctx.run(task_of(work))  # refusals and failures are told to the person there; never raises
        try:
            self.inbox.done(entry, self.clock.now())
        except Exception:
            log.exception("could not mark inbox row done; it runs again when its lease lapses", extra={"entry": entry})

    def _round(self, worker: str) -> int:
        received = self.inbox.claim_received(worker, self.clock.now(), limit=4)
        for row in received:
            if not row.genuine or row.attempts > MAX_ATTEMPTS:
                self._settle_unrun(row)
                continue
            log.info("running recorded work", extra={"entry": row.id, "task": row.work.kind, "attempt": row.attempts})
            self._carry_out(row.id, row.work)
        return len(received)

    def _settle_unrun(self, row: Received) -> None:
        """A forged row (no MAC from the gate: written into the database by someone) or one past its attempts: audited
        and alerted, then settled, never run. If the audit fails the row stays claimed and comes back to this."""
        detail = {"entry": row.id, "task": row.work.kind, "attempts": row.attempts}
        if not row.genuine:
            log.error("refused an inbox row without a valid MAC: it was not recorded by the gate", extra=detail)
            self.ctx.service.refuse_forged_work(**detail)
        else:
            log.error("gave up an inbox row after %d attempts", MAX_ATTEMPTS, extra=detail)
            self.ctx.service.give_up_work(**detail)
        self.inbox.done(row.id, self.clock.now())
