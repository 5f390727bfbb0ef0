"""incidents (a timer or job that used up its retries), timer claims with a lease, and NOTIFY on PostgreSQL
when a timer falls due soon

- ``incident``: one row per timer firing or queued job that failed its retries; open until an administrator
  retries it successfully or resolves it (Camunda Cockpit's incidents). Nothing that gave up is silent.
- ``timer.claim_expires_at``: an executor marks the due rows it is about to fire (``claimed_by`` + this
  lease); another executor skips live claims and takes over those whose lease ran out (a killed executor).
  Only claimed rows carry a value, so a partial index finds the next lease to run out cheaply.
- PostgreSQL: a row trigger sends ``NOTIFY qifu_timer`` (payload: the due instant) when a waiting timer
  due within the hour is inserted or moved earlier, in the step's transaction; executors ``LISTEN`` and
  re-arm at once. Timers due later are found by the executors' safety poll (at most an hour apart), so the
  usual step that schedules a deadline days away sends nothing.

Revision ID: 0011_incidents
Revises: 0010_fewer_step_indexes
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_incidents'
down_revision = '0010_fewer_step_indexes'
branch_labels = None
depends_on = None

_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION qifu_timer_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qifu_timer', to_char(NEW.due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'));
    RETURN NULL;
END
$$
"""
_INSERT_TRIGGER = """
CREATE TRIGGER timer_notify_insert AFTER INSERT ON timer FOR EACH ROW
WHEN (NEW.status = 'waiting' AND NEW.due_at < now() + interval '1 hour')
EXECUTE FUNCTION qifu_timer_notify()
"""
_MOVE_TRIGGER = """
CREATE TRIGGER timer_notify_move AFTER UPDATE OF due_at, status ON timer FOR EACH ROW
WHEN (NEW.status = 'waiting' AND NEW.due_at < now() + interval '1 hour'
      AND (OLD.status <> 'waiting' OR NEW.due_at < OLD.due_at))
EXECUTE FUNCTION qifu_timer_notify()
"""


def upgrade() -> None:
    with op.batch_alter_table('timer') as batch_op:
        batch_op.add_column(sa.Column('claim_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_timer_claim_expires', ['claim_expires_at'],
                              postgresql_where=sa.text('claim_expires_at IS NOT NULL'),
                              sqlite_where=sa.text('claim_expires_at IS NOT NULL'))
    op.create_table(
        'incident',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=True),
        sa.Column('business_key', sa.String(length=200), nullable=True),
        sa.Column('element', sa.String(length=200), nullable=True),
        sa.Column('timer_id', sa.Integer(), nullable=True),
        sa.Column('job_type', sa.String(length=50), nullable=True),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('retries', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_by', sa.String(length=200), nullable=True),
        sa.Column('resolution', sa.String(length=20), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['timer_id'], ['timer.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('incident') as batch_op:
        batch_op.create_index('ix_incident_status_id', ['status', 'id'])
        batch_op.create_index('ix_incident_timer_id', ['timer_id'])
        batch_op.create_index('ix_incident_job', ['job_type', 'job_id'])
        batch_op.create_index('ix_incident_instance_id', ['instance_id'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_NOTIFY_FUNCTION)
        op.execute(_INSERT_TRIGGER)
        op.execute(_MOVE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS timer_notify_move ON timer')
        op.execute('DROP TRIGGER IF EXISTS timer_notify_insert ON timer')
        op.execute('DROP FUNCTION IF EXISTS qifu_timer_notify()')
    with op.batch_alter_table('incident') as batch_op:
        batch_op.drop_index('ix_incident_instance_id')
        batch_op.drop_index('ix_incident_job')
        batch_op.drop_index('ix_incident_timer_id')
        batch_op.drop_index('ix_incident_status_id')
    op.drop_table('incident')
    with op.batch_alter_table('timer') as batch_op:
        batch_op.drop_index('ix_timer_claim_expires')
        batch_op.drop_column('claim_expires_at')
