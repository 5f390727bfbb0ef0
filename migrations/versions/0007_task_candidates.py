"""candidate groups of open tasks as rows (the inbox queries them by index), filled from human_task

Revision ID: 0007_task_candidates
Revises: 0006_web_sessions
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_task_candidates'
down_revision = '0006_web_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'task_candidate',
        sa.Column('task_guid', sa.String(length=36), nullable=False),
        sa.Column('group_name', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['task_guid'], ['human_task.task_guid'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('task_guid', 'group_name'),
    )
    with op.batch_alter_table('task_candidate') as batch_op:
        batch_op.create_index('ix_task_candidate_group', ['group_name', 'task_guid'])
    conn = op.get_bind()
    rows = []
    for guid, groups in conn.execute(sa.text('SELECT task_guid, candidate_groups FROM human_task')):
        names = dict.fromkeys(g.strip() for g in (groups or '').split(',') if g.strip())
        rows.extend({'task_guid': guid, 'group_name': name} for name in names)
    if rows:
        conn.execute(sa.table('task_candidate', sa.column('task_guid'), sa.column('group_name')).insert(), rows)


def downgrade() -> None:
    op.drop_table('task_candidate')
