"""read side: each instance's earliest open due instant, a ledger row's working days to answer, list indexes

Revision ID: 0009_read_side
Revises: 0008_business_key_counter
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0009_read_side'
down_revision = '0008_business_key_counter'
branch_labels = None
depends_on = None

SHANGHAI = __import__('zoneinfo').ZoneInfo('Asia/Shanghai')


def upgrade() -> None:
    with op.batch_alter_table('instance') as batch_op:
        batch_op.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_instance_due_at', ['due_at'])
    with op.batch_alter_table('enterprise_case') as batch_op:
        batch_op.add_column(sa.Column('answered_working_days', sa.Integer(), nullable=True))
        batch_op.create_index('ix_enterprise_case_region_received', ['region', 'received_at'])
        batch_op.create_index('ix_enterprise_case_region_status', ['region', 'ledger_status'])
        batch_op.create_index('ix_enterprise_case_closed_at', ['closed_at'])
        batch_op.create_index('ix_enterprise_case_enterprise_name', ['enterprise_name'])
    conn = op.get_bind()
    conn.execute(sa.text('UPDATE instance SET due_at = (SELECT min(h.due_at) FROM human_task h '
                         'WHERE h.instance_id = instance.id)'))
    _backfill_working_days(conn)


def _backfill_working_days(conn) -> None:  # noqa: ANN001
    """Working days from receipt to answer of the cases answered before this migration (same calendar rule)."""
    from engine.calendar import load_calendar
    from sqlalchemy.orm import Session

    rows = conn.execute(sa.text('SELECT id, received_at, answered_at FROM enterprise_case '
                                'WHERE answered_at IS NOT NULL')).all()
    if not rows:
        return
    calendar = load_calendar(Session(bind=conn))
    table = sa.table('enterprise_case', sa.column('id'), sa.column('answered_working_days'))
    for case_id, received, answered in rows:
        start, end = (_local_date(v) for v in (received, answered))
        conn.execute(table.update().where(table.c.id == case_id)
                     .values(answered_working_days=calendar.working_days_between(start, end)))


def _local_date(value):  # noqa: ANN001, ANN202
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # stored as UTC
    return value.astimezone(SHANGHAI).date()


def downgrade() -> None:
    with op.batch_alter_table('enterprise_case') as batch_op:
        for name in ('ix_enterprise_case_enterprise_name', 'ix_enterprise_case_closed_at',
                     'ix_enterprise_case_region_status', 'ix_enterprise_case_region_received'):
            batch_op.drop_index(name)
        batch_op.drop_column('answered_working_days')
    with op.batch_alter_table('instance') as batch_op:
        batch_op.drop_index('ix_instance_due_at')
        batch_op.drop_column('due_at')
