"""Approval steps: which step a request waits on, given the approvals it has (always counted in order)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grants.catalog import Scope, Step
    from grants.domain import Request


def step_progress(scope: Scope, approvals: tuple[str, ...]) -> tuple[int, int]:
    """(index of the step waiting for approvals, approvals it already has); index == len(steps) when done.

    Approvals only ever count for the current step, so the step of each approval follows from the order."""
    remaining = len(approvals)
    steps = scope.steps
    for index, step in enumerate(steps):
        if remaining < step.approvals:
            return index, remaining
        remaining -= step.approvals
    return len(steps), 0


def current_step(scope: Scope, request: Request) -> Step | None:
    index, _ = step_progress(scope, request.approvals)
    return scope.steps[index] if index < len(scope.steps) else None
