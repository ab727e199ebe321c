"""Runs the timers on exactly one replica: the one holding the leader lock."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from grants.ports import Clock, LeaderLock
from grants.service import ElevationService

log = logging.getLogger(__name__)


class SwitchableTimer(Protocol):
    def activate(self) -> None: ...

    def deactivate(self) -> None:
        """Drop every armed job and ignore new ones until activated again."""
        ...


class TimeKeeper:
    """Call `tick()` about once a second. The leader arms exact timers for everything due soon
    (whichever replica issued it) and reconciles in full now and then; followers only watch the lock."""

    def __init__(
        self,
        service: ElevationService,
        lock: LeaderLock,
        timer: SwitchableTimer,
        clock: Clock,
        horizon: timedelta = timedelta(seconds=3),
        full_every: timedelta = timedelta(seconds=15),
    ):
        self.service, self.lock, self.timer, self.clock = service, lock, timer, clock
        self.horizon, self.full_every = horizon, full_every
        self.leader = False
        self._last_full: datetime | None = None

    def tick(self) -> None:
        self.service.flush_refusals()  # every replica counts its own refusal bursts
        if not self.leader:
            if not self.lock.acquire():
                return
            self.leader = True
            self.timer.activate()
            log.info("became leader: running the timers")
        elif not self.lock.holding():
            log.warning("lost the leader lock: timers stop here")
            self.step_down()
            return
        now = self.clock.now()
        if self._last_full is None or now - self._last_full >= self.full_every:
            counts = self.service.reconcile()
            self._last_full = now
            if any(counts.values()):
                log.info("reconciled", extra=counts)
        self.service.arm_due(now + self.horizon)
        try:
            self.service.anchor_chain()
        except Exception:  # Vault down: the timers go on; the anchor catches up on a later tick
            log.warning("anchoring the audit chain failed; retrying next tick", exc_info=True)

    def step_down(self) -> None:
        self.leader = False
        self._last_full = None
        self.timer.deactivate()
        self.lock.release()
