"""web tables: users, roles, login attempts, unmask log, attachments

Revision ID: 0003_web
Revises: 0002_domain
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_web'
down_revision = '0002_domain'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'app_user',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('display_name', sa.String(length=200), nullable=True),
        sa.Column('unit_code', sa.String(length=50), nullable=False),
        sa.Column('password_hash', sa.String(length=300), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('username'),
    )
    op.create_index('ix_app_user_unit_code', 'app_user', ['unit_code'])
    op.create_table(
        'user_role',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'role', name='uq_user_role'),
    )
    op.create_index('ix_user_role_user_id', 'user_role', ['user_id'])
    op.create_index('ix_user_role_role', 'user_role', ['role'])
    op.create_table(
        'login_attempt',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('ip', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('success', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_login_attempt_who', 'login_attempt', ['username', 'ip', 'at'])
    op.create_table(
        'unmask_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('business_key', sa.String(length=200), nullable=False),
        sa.Column('field', sa.String(length=100), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_unmask_log_username', 'unmask_log', ['username'])
    op.create_index('ix_unmask_log_business_key', 'unmask_log', ['business_key'])
    op.create_table(
        'attachment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('task_guid', sa.String(length=36), nullable=True),
        sa.Column('filename', sa.String(length=255), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('uploaded_by', sa.String(length=100), nullable=False),
        sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_attachment_instance_id', 'attachment', ['instance_id'])
    op.create_index('ix_attachment_sha256', 'attachment', ['sha256'])


def downgrade() -> None:
    op.drop_table('attachment')
    op.drop_table('unmask_log')
    op.drop_table('login_attempt')
    op.drop_table('user_role')
    op.drop_table('app_user')
