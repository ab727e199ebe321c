"""SQLModel tables of requests, the audit chain and message references."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Index, Text, text
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
    revoke_attempts: int = 0
    break_glass: bool = False
    on_behalf_of: str | None = Field(default=None, max_length=80)  # `entity:NAME` of a service, asked for by the requester
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


class SeenRequestRow(SQLModel, table=True):
    """Keys of signed requests and events already acted on, shared by every replica (replay protection)."""

    __tablename__ = "seen_requests"

    key: str = Field(primary_key=True, max_length=64)  # a SHA-256 hex digest: no request content is kept
    expires_at: datetime = Field(sa_column=_utc(nullable=False, index=True))


class SshKeyRow(SQLModel, table=True):
    """Each person's registered SSH public key (public data; the fingerprint is what people and the audit see)."""

    __tablename__ = "ssh_keys"

    user_id: str = Field(primary_key=True, max_length=32)
    public_key: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: str = Field(max_length=64)
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
