"""The replay guard port: remembers keys (signed requests, event IDs) so each is acted on once."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class ReplayGuard(Protocol):
    def first_time(self, key: str, until: datetime) -> bool:
        """Remember `key` until `until`; True only the first time it is seen (by any replica)."""
        ...
