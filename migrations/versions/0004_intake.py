"""intake: API clients, idempotency records, rate-limit hits

Revision ID: 0004_intake
Revises: 0003_web
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_intake'
down_revision = '0003_web'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_client',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('channels', sa.String(length=1000), nullable=False),
        sa.Column('process_key', sa.String(length=200), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name', name='uq_api_client_name'),
        sa.UniqueConstraint('token_hash', name='uq_api_client_token_hash'),
    )
    op.create_table(
        'idempotency_record',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('response_json', sa.Text(), nullable=True),
        sa.Column('sealed_token', sa.String(length=200), nullable=True),
        sa.Column('business_key', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['api_client.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('client_id', 'key', name='uq_idempotency_client_key'),
    )
    op.create_index('ix_idempotency_record_business_key', 'idempotency_record', ['business_key'])
    op.create_table(
        'rate_limit_hit',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bucket', sa.String(length=200), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rate_limit_hit_bucket_at', 'rate_limit_hit', ['bucket', 'at'])


def downgrade() -> None:
    op.drop_index('ix_rate_limit_hit_bucket_at', table_name='rate_limit_hit')
    op.drop_table('rate_limit_hit')
    op.drop_index('ix_idempotency_record_business_key', table_name='idempotency_record')
    op.drop_table('idempotency_record')
    op.drop_table('api_client')
