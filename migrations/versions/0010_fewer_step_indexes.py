"""drop indexes no query needs from the tables every step writes (a page less per index in each commit);
index the inbox's order

event.instance_id is covered by the unique (instance_id, seq); event.task_guid is answered by
historic_task.task_guid; timer.task_guid is looked up with its instance_id. The inbox pages open tasks by
(due_at IS NULL, due_at, id): an expression index in that order lets both databases page without sorting.

Revision ID: 0010_fewer_step_indexes
Revises: 0009_read_side
"""
from alembic import op

revision = '0010_fewer_step_indexes'
down_revision = '0009_read_side'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('event') as batch_op:
        batch_op.drop_index('ix_event_instance_id')
        batch_op.drop_index('ix_event_task_guid')
    with op.batch_alter_table('timer') as batch_op:
        batch_op.drop_index('ix_timer_task_guid')
    op.execute('CREATE INDEX ix_human_task_due_order ON human_task ((due_at IS NULL), due_at, id)')


def downgrade() -> None:
    op.execute('DROP INDEX ix_human_task_due_order')
    with op.batch_alter_table('timer') as batch_op:
        batch_op.create_index('ix_timer_task_guid', ['task_guid'])
    with op.batch_alter_table('event') as batch_op:
        batch_op.create_index('ix_event_task_guid', ['task_guid'])
        batch_op.create_index('ix_event_instance_id', ['instance_id'])
