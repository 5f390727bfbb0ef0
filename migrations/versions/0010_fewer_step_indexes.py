"""drop indexes no query needs from the tables every step writes (a page less per index in each commit);
index the inbox's order

event.instance_id is covered by the unique (instance_id, seq); event.task_guid is answered by
historic_task.task_guid; timer.task_guid is looked up with its instance_id. The inbox pages open tasks by
(due_at IS NULL, due_at, id): an expression index in that order lets both databases page without sorting.
The assignee and completed_by indexes become partial (only rows that have one): a task opens unclaimed and
not completed, and then writes no entry to either. On SQLite task_candidate becomes a WITHOUT ROWID table: its primary key is the table, one b-tree less.

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
    op.execute('DROP INDEX ix_human_task_assignee')
    op.execute('CREATE INDEX ix_human_task_assignee ON human_task (assignee) WHERE assignee IS NOT NULL')
    op.execute('DROP INDEX ix_historic_task_completed_by')
    op.execute('CREATE INDEX ix_historic_task_completed_by ON historic_task (completed_by, ended_at, id) '
               'WHERE completed_by IS NOT NULL')
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_candidates(' WITHOUT ROWID')


def _rebuild_candidates(suffix: str) -> None:
    op.execute('CREATE TABLE task_candidate_new (task_guid VARCHAR(36) NOT NULL, group_name VARCHAR(200) NOT NULL, '
               'PRIMARY KEY (task_guid, group_name), '
               'FOREIGN KEY(task_guid) REFERENCES human_task (task_guid) ON DELETE CASCADE)' + suffix)
    op.execute('INSERT INTO task_candidate_new (task_guid, group_name) SELECT task_guid, group_name FROM task_candidate')
    op.execute('DROP TABLE task_candidate')
    op.execute('ALTER TABLE task_candidate_new RENAME TO task_candidate')
    op.execute('CREATE INDEX ix_task_candidate_group ON task_candidate (group_name, task_guid)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_candidates('')
    op.execute('DROP INDEX ix_historic_task_completed_by')
    op.execute('CREATE INDEX ix_historic_task_completed_by ON historic_task (completed_by)')
    op.execute('DROP INDEX ix_human_task_assignee')
    op.execute('CREATE INDEX ix_human_task_assignee ON human_task (assignee)')
    op.execute('DROP INDEX ix_human_task_due_order')
    with op.batch_alter_table('timer') as batch_op:
        batch_op.create_index('ix_timer_task_guid', ['task_guid'])
    with op.batch_alter_table('event') as batch_op:
        batch_op.create_index('ix_event_task_guid', ['task_guid'])
        batch_op.create_index('ix_event_instance_id', ['instance_id'])
