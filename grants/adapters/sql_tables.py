"""SQLModel tables of requests, the audit chain and message references."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Index, String, Text, text
from sqlmodel import Field, SQLModel

OPEN_STATES = "state IN ('pending', 'approved', 'active')"


def _utc(nullable: bool = True, index: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class RequestRow(SQLModel, table=True):
    __tablename__ = "requests"
    # One open request per requester and scope, enforced where concurrent writers meet: the database.
    __table_args__ = (
        Index(
            "uq_requests_one_open",
            "requester",
            "scope",
            unique=True,
            sqlite_where=text(OPEN_STATES),
            postgresql_where=text(OPEN_STATES),
        ),
    )

    id: str = Field(primary_key=True, max_length=16)
    scope: str = Field(max_length=64, index=True)
    requester: str = Field(max_length=32, index=True)
    duration_seconds: int
    reason: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=16, index=True)
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    pending_until: datetime = Field(sa_column=_utc(nullable=False))
    approvals: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    approvals_required: int = 1
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = Field(default=None, sa_column=_utc())
    issued_at: datetime | None = Field(default=None, sa_column=_utc())
    expires_at: datetime | None = Field(default=None, sa_column=_utc(index=True))
    ended_at: datetime | None = Field(default=None, sa_column=_utc())
    accessor: str | None = Field(default=None, max_length=128)
    credential_seal: str | None = Field(default=None, max_length=80)  # grants/seals.py: HMAC, the key is in Vault
    revoke_attempts: int = 0
    break_glass: bool = False
    on_behalf_of: str | None = Field(default=None, max_length=80)  # `entity:NAME` of a service, asked for by the requester
    ticket: str | None = Field(default=None, max_length=80)  # `TRACKER:KEY` checked at request time (migration 0012)
    not_after: datetime | None = Field(default=None, sa_column=_utc())  # the shift or window that bounds the grant (0015)
    starts_at: datetime | None = Field(default=None, sa_column=_utc())  # a later start (migration 0016)
    extensions: int = 0
    extension_pending_seconds: int | None = None
    extension_number: int | None = None  # which ask is pending (migration 0008): a stale ask's button never matches
    reminders_sent: int = 0
    escalated: bool = False
    nudged_at: datetime | None = Field(default=None, sa_column=_utc())
    warned: bool = False
    review_state: str | None = Field(default=None, max_length=16, index=True)
    review_due_at: datetime | None = Field(default=None, sa_column=_utc())
    reviewed_by: str | None = Field(default=None, max_length=32)
    wake_at: datetime | None = Field(default=None, sa_column=_utc(index=True))
    version: int = 0
    # The lease of the worker running what is due now (migration 0017); the CAS writes never touch it.
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(default=None, sa_column=_utc())


class AuditRow(SQLModel, table=True):
    """Append-only: rows are inserted under the chain-head lock and never updated."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_request_id", "request_id"), Index("ix_audit_events_at", "at"))

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=_utc(nullable=False))
    event: str = Field(max_length=32)
    request_id: str | None = Field(default=None, max_length=16)
    scope: str | None = Field(default=None, max_length=64)
    actor: str = Field(max_length=32)
    subject: str | None = Field(default=None, max_length=32)
    detail: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON text
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHeadRow(SQLModel, table=True):
    """One row: the last seq and hash. Locking it serializes appends so the chain never forks."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True)
    seq: int
    hash: str = Field(max_length=64)


class MessageRefRow(SQLModel, table=True):
    __tablename__ = "message_refs"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=16, index=True)
    channel: str = Field(max_length=32)
    ts: str = Field(max_length=32)
    step: int | None = None  # the approval step the message asked for; None: it follows the request


class InboxRow(SQLModel, table=True):
    """Each received Slack event, once (migration 0010): the key is the replay record shared by every replica; the
    work, if any, is claimed with a lease and run after the ack. Work arguments are dropped once it has run."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_open", "done_at", "next_attempt_at"), Index("ix_inbox_expires_at", "expires_at"))

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))  # a SHA-256 hex digest
    kind: str | None = Field(default=None, max_length=16)
    payload: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON: the work's arguments
    mac: str | None = Field(default=None, max_length=80)  # migration 0019: Sealer.mac of (key, kind, payload)
    received_at: datetime = Field(sa_column=_utc(nullable=False))
    expires_at: datetime = Field(sa_column=_utc(nullable=False))  # the replay record is kept until then
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_utc(nullable=False))
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(default=None, sa_column=_utc())
    done_at: datetime | None = Field(default=None, sa_column=_utc())


class SshKeyRow(SQLModel, table=True):
    """Each person's registered SSH public key (public data; the fingerprint is what people and the audit see)."""

    __tablename__ = "ssh_keys"

    user_id: str = Field(primary_key=True, max_length=32)
    public_key: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: str = Field(max_length=64)
    registered_at: datetime = Field(sa_column=_utc(nullable=False))


class CsrRow(SQLModel, table=True):
    """Each person's registered certificate signing request for pki scopes (public data, as a public key is)."""

    __tablename__ = "csrs"

    user_id: str = Field(primary_key=True, max_length=32)
    csr: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: str = Field(max_length=64)  # SHA-256 of the public key: what people and the audit see
    registered_at: datetime = Field(sa_column=_utc(nullable=False))


class OutboxRow(SQLModel, table=True):
    """Notification intents, written in the transaction of the change that causes them; never a secret."""

    __tablename__ = "outbox"
    # The workers' question: what is due and not yet settled, by request in order.
    __table_args__ = (
        Index("ix_outbox_open", "delivered_at", "failed_at", "next_attempt_at"),
        Index("ix_outbox_request", "request_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str | None = Field(default=None, max_length=16)
    kind: str = Field(max_length=16)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON: approver IDs, news, context
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_utc(nullable=False))
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(default=None, sa_column=_utc())
    delivered_at: datetime | None = Field(default=None, sa_column=_utc())
    failed_at: datetime | None = Field(default=None, sa_column=_utc())


class AuditStreamRow(SQLModel, table=True):
    """One row per audit stream sink (syslog, webhook): how far it got, claimed with a lease so one worker sends."""

    __tablename__ = "audit_streams"

    name: str = Field(primary_key=True, max_length=32)
    delivered_seq: int = 0  # every event up to this seq was taken by the collector
    replay_seq: int = 0  # where the batch before the last one ended: resent after a broken connection
    next_attempt_at: datetime = Field(sa_column=_utc(nullable=False))
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(default=None, sa_column=_utc())
    attempts: int = 0
    lag_since: datetime | None = Field(default=None, sa_column=_utc())
    alerted: bool = False


class StepUpLinkRow(SQLModel, table=True):
    """Each step-up link an Approve click answered with (migration 0014): digests only, never the link's secret."""

    __tablename__ = "step_up_links"

    key: str = Field(sa_column=Column(String(64), primary_key=True))  # digest of the link's secret
    request_id: str = Field(max_length=16, index=True)
    decision: str = Field(max_length=32)
    slack_user: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    expires_at: datetime = Field(sa_column=_utc(nullable=False, index=True))
    used_at: datetime | None = Field(default=None, sa_column=_utc())
    state: str | None = Field(default=None, sa_column=Column(String(128), nullable=True, unique=True))
    browser: str | None = Field(default=None, max_length=64)  # digest of the starting browser's cookie


class SshCertificateRow(SQLModel, table=True):
    """Each SSH certificate the bot signed (migration 0013): its serial, grant and end; `revoked_at` once revoked
    early. The KRL every replica serves is built from these rows, so a revoke through one replica is on all."""

    __tablename__ = "ssh_certificates"
    __table_args__ = (Index("ix_ssh_certificates_valid_before", "valid_before"),)

    mount: str = Field(primary_key=True, max_length=128)
    serial: str = Field(primary_key=True, max_length=20)  # an unsigned 64-bit number: text, not BIGINT
    request_id: str | None = Field(default=None, max_length=16)
    valid_before: datetime = Field(sa_column=_utc(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_utc())


class SshCaKeyRow(SQLModel, table=True):
    """Each SSH CA mount's public key, cached when a certificate is signed: the KRL is built without Vault."""

    __tablename__ = "ssh_ca_keys"

    mount: str = Field(primary_key=True, max_length=128)
    public_key: str = Field(sa_column=Column(Text, nullable=False))
    seen_at: datetime = Field(sa_column=_utc(nullable=False))
