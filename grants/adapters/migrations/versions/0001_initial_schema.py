"""Initial schema: requests, the audit chain and its head, message references.

Revision ID: 0001
Revises: 
"""
from alembic import op  # noqa: I001
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('request_id', sa.String(length=16), nullable=True),
    sa.Column('scope', sa.String(length=64), nullable=True),
    sa.Column('actor', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_events_request_id', ['request_id'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('message_refs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('message_refs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_refs_request_id'), ['request_id'], unique=False)

    op.create_table('requests',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('requester', sa.String(length=32), nullable=False),
    sa.Column('duration_seconds', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pending_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approvals', sa.JSON(), nullable=False),
    sa.Column('approvals_required', sa.Integer(), nullable=False),
    sa.Column('decided_by', sa.String(length=32), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accessor', sa.String(length=128), nullable=True),
    sa.Column('revoke_attempts', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_requests_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_requests_requester'), ['requester'], unique=False)
        batch_op.create_index(batch_op.f('ix_requests_scope'), ['scope'], unique=False)
        batch_op.create_index(batch_op.f('ix_requests_state'), ['state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_requests_state'))
        batch_op.drop_index(batch_op.f('ix_requests_scope'))
        batch_op.drop_index(batch_op.f('ix_requests_requester'))
        batch_op.drop_index(batch_op.f('ix_requests_expires_at'))

    op.drop_table('requests')
    with op.batch_alter_table('message_refs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_refs_request_id'))

    op.drop_table('message_refs')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_request_id')
        batch_op.drop_index('ix_audit_events_at')

    op.drop_table('audit_events')
