"""What every catalog scope has, whatever its kind: durations, people, approval steps, auto-approval, break-glass."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from grants.approval_catalog import ApprovalFields
from grants.context_catalog import ContextFields, OnCallRule
from grants.csr import Csr
from grants.durations import Duration


class Strict(BaseModel):
    """A catalog table: unknown keys are errors, and a validated catalog never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(Strict):
    """One ordered approval step: `approvals` distinct people from `approvers`."""

    name: str = ""
    approvers: list[str] = Field(min_length=1)
    approvals: int = Field(default=1, ge=1)
    step_up: bool = False  # approvers of this step confirm on the web page after a sign-in


class AutoApprove(Strict):
    """Approve without a human for these requesters (or whoever is on call), up to `max_duration`; recorded as `system`."""

    name: str = ""
    requesters: list[str] = []
    max_duration: Duration
    on_call: OnCallRule | None = None  # only while the requester is on call in this schedule (PagerDuty)
    end_with_shift: bool = False  # the grant never outlives the shift that allowed it


class BreakGlass(Strict):
    """Issue at once, with a short cap, a loud notice and a post-hoc review by an approver."""

    requesters: list[str] = Field(min_length=1)
    max_duration: Duration = Duration("30m")
    review_within: Duration = Duration("24h")


class ScopeBase(Strict, ApprovalFields, ContextFields):
    """What every scope has, whatever its credential kind: durations, people, steps, break-glass, extensions."""

    description: str
    min_duration: Duration = Duration("1m")
    default_duration: Duration = Duration("15m")
    max_duration: Duration = Duration("1h")
    requesters: list[str] = Field(min_length=1)
    approvers: list[str] = []
    approvals_required: int = Field(default=1, ge=1)
    approval_steps: list[Step] = []
    require_reason: bool = True
    reason_pattern: str = ""
    remind_after: Duration | None = None
    escalate_after: Duration | None = None
    escalation: list[str] = []
    auto_approve: list[AutoApprove] = []
    break_glass: BreakGlass | None = None
    warn_before: Duration = Duration("5m")
    max_extensions: int = Field(default=0, ge=0)
    extension_requires_approval: bool = True
    max_total_duration: Duration | None = None

    # What the core, the listeners and the messages ask of a kind, never its name: a kind overrides these here.
    needs_public_key: ClassVar[bool] = False  # the credential certifies the requester's registered SSH public key
    ends_by_itself: ClassVar[bool] = True  # False: only the bot or `jitbot vault sweep` ends it (no TTL of its own)
    revoke_caveat: ClassVar[str] = ""  # what an early revoke cannot do, told plainly to the requester
    needs_csr: ClassVar[bool] = False  # the credential certifies the requester's registered CSR (`/elevate csr`)

    def csr_problems(self, csr: Csr, requester: str) -> list[str]:
        """Why `csr` cannot be signed for `requester` in this scope ([] for kinds that sign no CSR)."""
        return []

    @property
    def policies_granted(self) -> list[str]:
        """The Vault policies this scope's credential carries (none for kinds that grant no policy)."""
        return []

    @property
    def services(self) -> list[str]:
        """The service entities (`entity:NAME`) this scope may be requested for; none for kinds that cannot act for one."""
        return []

    @property
    def steps(self) -> list[Step]:
        """The ordered approval steps; a scope without `approval_steps` has one step."""
        if self.approval_steps:
            return list(self.approval_steps)
        return [Step.model_construct(name="approval", approvers=self.approvers, approvals=self.approvals_required)]

    @property
    def approvals_needed(self) -> int:
        return sum(step.approvals for step in self.steps)

    @property
    def all_approvers(self) -> list[str]:
        """Everyone who may approve some step (they also may revoke grants and close reviews)."""
        return [p for step in self.steps for p in step.approvers]

    @property
    def max_total(self) -> timedelta:
        """The longest a grant may last with every extension: `max_total_duration`, else `max_duration` each time."""
        return self.max_total_duration or self.max_duration * (1 + self.max_extensions)

    @field_validator("reason_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from exc
        return value
