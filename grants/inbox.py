"""The inbox's records: each received event recorded once (also the replay record), its work run after the ack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A row claimed more often than this is given up (audited, alerted), never run again: its work killed the process
# (or hung past its lease) every time, and would otherwise run after every lease lapse forever. A genuine click is
# then lost after its ack, which is why the alert names it: five crashes in a row is a bug to fix, not load.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Work:
    """What a received event asks for after its ack, as plain data (a kind and its arguments, never a secret)."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """An inbox row with work still to do, as claimed: `attempts` counts this claim (1: its first run), and `genuine`
    says its MAC proves the web side recorded it from a verified request (True when the bot has no key to check)."""

    id: int
    work: Work
    attempts: int
    genuine: bool = True
