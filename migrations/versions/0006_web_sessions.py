"""web sessions: server-side session rows (the cookie holds only a random id, stored here hashed)

Revision ID: 0006_web_sessions
Revises: 0005_task_history
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_web_sessions'
down_revision = '0005_task_history'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sid_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('data', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('sid_hash'),
    )
    op.create_index('ix_web_session_user_id', 'web_session', ['user_id'])
    op.create_index('ix_web_session_expires_at', 'web_session', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_web_session_expires_at', table_name='web_session')
    op.drop_index('ix_web_session_user_id', table_name='web_session')
    op.drop_table('web_session')
