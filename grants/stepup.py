"""Step-up links: the one-time link an Approve click on a step-up scope answers with, and the sign-in it starts
(the ports, StepUpLinks and SignInFlow, are in grants/ports.py)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime


def digest(secret: str, purpose: str) -> str:
    """What is kept of a secret (a link's, a browser cookie's): a database reader can follow no link with it."""
    return hashlib.sha256(f"{purpose}:{secret}".encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class StepUpLink:
    """One approver's link for one decision; opened for a sign-in once, then finished once (by Vault's OIDC state)."""

    key: str  # digest of the link's secret (the secret is only in the approver's private Slack message)
    request_id: str
    decision: str  # what the Approve button was shown for (`JIT-…:r`)
    slack_user: str  # who clicked Approve: the only person whose sign-in this link accepts
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None  # when it was opened for a sign-in (once)
    state: str | None = None  # the OIDC state of that sign-in
    browser: str | None = None  # digest of the cookie of the browser that started it


class SignInRefused(Exception):
    """The sign-in did not complete, or proved someone else; `rule` names it in the audit trail."""

    def __init__(self, message: str, rule: str):
        super().__init__(message)
        self.rule = rule
