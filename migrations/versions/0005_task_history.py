"""historic user tasks (every task ever opened, by an indexed task id) and an index on event.task_guid

Revision ID: 0005_task_history
Revises: 0004_intake
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0005_task_history'
down_revision = '0004_intake'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'historic_task',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('task_guid', sa.String(length=36), nullable=False),
        sa.Column('spec_id', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=400), nullable=True),
        sa.Column('candidate_groups', sa.String(length=1000), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=20), nullable=True),
        sa.Column('completed_by', sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task_guid'),
    )
    with op.batch_alter_table('historic_task') as batch_op:
        batch_op.create_index('ix_historic_task_instance_id', ['instance_id'])
        batch_op.create_index('ix_historic_task_completed_by', ['completed_by'])
    with op.batch_alter_table('event') as batch_op:
        batch_op.create_index('ix_event_task_guid', ['task_guid'])
    _backfill()


def _backfill() -> None:
    """Tasks of cases that existed before: from the history (opened = listed active and ready, closed =
    completed in a step or gone from the active list), and the open rows as they are."""
    conn = op.get_bind()
    tasks: dict[str, dict] = {}
    events = conn.execute(sa.text('SELECT instance_id, at, actor, payload FROM event ORDER BY instance_id, seq'))
    current: dict[int, set[str]] = {}
    for instance_id, at, actor, payload in events:
        body = json.loads(payload)
        completed = {c.get('task') for c in body.get('completed', []) if c.get('type') == 'UserTask'}
        ready = {a['task']: a for a in body.get('active', []) if a.get('state') == 'ready' and a.get('task')}
        for guid in current.get(instance_id, set()) - set(ready):
            row = tasks[guid]
            row.update(ended_at=at, outcome='completed' if guid in completed else 'cancelled',
                       completed_by=actor if guid in completed else None)
        for guid, active in ready.items():
            tasks.setdefault(guid, {'instance_id': instance_id, 'task_guid': guid,
                                    'spec_id': active.get('element') or '', 'name': active.get('name'),
                                    'candidate_groups': '', 'created_at': at, 'due_at': None, 'ended_at': None,
                                    'outcome': None, 'completed_by': None})
        current[instance_id] = set(ready)
    for guid, groups, due in conn.execute(sa.text('SELECT task_guid, candidate_groups, due_at FROM human_task')):
        if guid in tasks:
            tasks[guid].update(candidate_groups=groups or '', due_at=due)
    if tasks:
        conn.execute(sa.table('historic_task', *[sa.column(c) for c in next(iter(tasks.values()))]).insert(),
                     list(tasks.values()))


def downgrade() -> None:
    with op.batch_alter_table('event') as batch_op:
        batch_op.drop_index('ix_event_task_guid')
    op.drop_table('historic_task')
