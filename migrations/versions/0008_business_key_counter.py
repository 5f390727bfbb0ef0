"""business-key counters: the last number given out per prefix, seeded from the keys already taken

Revision ID: 0008_business_key_counter
Revises: 0007_task_candidates
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_business_key_counter'
down_revision = '0007_task_candidates'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'business_key_counter',
        sa.Column('prefix', sa.String(length=40), nullable=False),
        sa.Column('last', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('prefix'),
    )
    conn = op.get_bind()
    last: dict[str, int] = {}
    for (key,) in conn.execute(sa.text('SELECT business_key FROM instance')):
        prefix, _, number = key.rpartition('-')
        if prefix and number.isdigit() and key[:3] in ('PA-', 'FH-'):
            last[prefix + '-'] = max(last.get(prefix + '-', 0), int(number))
    if last:
        table = sa.table('business_key_counter', sa.column('prefix'), sa.column('last'))
        conn.execute(table.insert(), [{'prefix': p, 'last': n} for p, n in last.items()])


def downgrade() -> None:
    op.drop_table('business_key_counter')
