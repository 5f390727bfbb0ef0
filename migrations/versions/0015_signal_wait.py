"""signal_wait: the catch events waiting for a signal, so that a broadcast finds its cases by an index

One row per waiting signal catch event (instance, task, signal name), written by the step that starts the wait
and deleted by the one that ends it (engine/signals.py); ``ix_signal_wait_name`` finds the cases waiting for a
signal name in instance order. A case already waiting for a signal before this migration gets its row at its
next step (until then a broadcast does not reach it; nothing could deliver a signal to it before either).

Revision ID: 0015_signal_wait
Revises: 0014_admin_log
"""
import sqlalchemy as sa
from alembic import op

revision = '0015_signal_wait'
down_revision = '0014_admin_log'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'signal_wait',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('task_guid', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_signal_wait_instance_id', 'signal_wait', ['instance_id'])
    op.create_index('ix_signal_wait_name', 'signal_wait', ['name', 'instance_id'])


def downgrade() -> None:
    op.drop_index('ix_signal_wait_name', table_name='signal_wait')
    op.drop_index('ix_signal_wait_instance_id', table_name='signal_wait')
    op.drop_table('signal_wait')
