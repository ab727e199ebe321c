"""On-call as the core sees it: who holds a schedule now, at which escalation level, until when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


class OnCallUnavailable(Exception):
    """The on-call source could not be asked: nobody counts as on call then (access is never widened)."""


@dataclass(frozen=True)
class Shift:
    """One on-call entry as the source showed it: a user holding `schedule` at `escalation_level` until `end`."""

    user: str  # the source's user ID (PagerDuty's PXXXXXX)
    user_name: str
    schedule: str
    escalation_level: int
    start: datetime | None
    end: datetime | None  # None: the source says this user never goes off call

    def evidence(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "user": self.user,
            "user_name": self.user_name,
            "escalation_level": self.escalation_level,
            "shift_start": self.start.isoformat() if self.start else None,
            "shift_end": self.end.isoformat() if self.end else None,
        }
