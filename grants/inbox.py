"""The inbox's records: each received event recorded once (also the replay record), its work run after the ack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Work:
    """What a received event asks for after its ack, as plain data (a kind and its arguments, never a secret)."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """An inbox row with work still to do."""

    id: int
    work: Work
    attempts: int
