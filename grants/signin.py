"""Step-up evidence: who signed in, where and when, for one approval; the core refuses a step-up approval without it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SignIn:
    """A fresh sign-in of an approver through Vault's OIDC auth method, checked by jitbot's page (never a token)."""

    slack_user: str  # who clicked Approve in Slack
    entity_id: str  # the Vault entity the sign-in resolved to (the Slack user's, or the page refused it)
    issuer: str  # the IdP (OIDC issuer) the sign-in went through
    subject: str  # the IdP's subject for the person
    signed_in_at: datetime
    mfa: str  # the second factor the IdP enforces for approvers

    def audit(self) -> dict[str, Any]:
        """The evidence as the audit detail carries it (hash-chained with the event)."""
        return {**asdict(self), "signed_in_at": self.signed_in_at.isoformat()}
