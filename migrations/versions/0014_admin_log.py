"""admin log (who changed which user, unit, API client or calendar day, and when), and a password that must be
changed at the next login

- ``admin_log``: one row per change an administrator makes, on the admin pages or with the ``qifu`` command
  (users, units and liaisons, API clients, the working-day calendar, the deadlines recomputed after it). The
  page lists it newest first and filters by administrator and by kind: ``ix_admin_log_at`` pages the whole
  log, ``ix_admin_log_actor`` and ``ix_admin_log_kind`` each filter (equality first, then the order).
- ``app_user.must_change_password``: a password reset gives a temporary password that the administrator sees
  once; the user must replace it before anything else. A plain ``ALTER TABLE … ADD COLUMN`` on both
  databases: a batch copy of ``app_user`` on SQLite would drop the table, and with foreign keys on that
  deletes every ``user_role`` row (``ON DELETE CASCADE``).

Revision ID: 0014_admin_log
Revises: 0013_keyed_history
"""
import sqlalchemy as sa
from alembic import op

revision = '0014_admin_log'
down_revision = '0013_keyed_history'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'admin_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('target', sa.String(length=200), nullable=False),
        sa.Column('summary', sa.String(length=1000), nullable=False),
        sa.Column('details_json', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_admin_log_at', 'admin_log', ['at', 'id'])
    op.create_index('ix_admin_log_actor', 'admin_log', ['actor', 'at', 'id'])
    op.create_index('ix_admin_log_kind', 'admin_log', ['kind', 'at', 'id'])
    op.add_column('app_user', sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))


def downgrade() -> None:
    op.drop_column('app_user', 'must_change_password')
    op.drop_index('ix_admin_log_kind', table_name='admin_log')
    op.drop_index('ix_admin_log_actor', table_name='admin_log')
    op.drop_index('ix_admin_log_at', table_name='admin_log')
    op.drop_table('admin_log')
