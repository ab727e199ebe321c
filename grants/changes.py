"""A change of one request as the store writes it: the new row, the version it replaces, its audit event, its notices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grants.domain import AuditEvent, Request
from grants.outbox import Notice


@dataclass(frozen=True)
class Change:
    request: Request
    expected_version: int
    event: AuditEvent
    notices: Sequence[Notice] = ()
