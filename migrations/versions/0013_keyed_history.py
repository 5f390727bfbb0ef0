"""keyed history chain (event.mac) and the reason given for each unmasking (unmask_log.reason)

- ``event.mac``: ``key id:HMAC-SHA256`` of the row's hash under a key kept outside the database
  (``QIFU_HISTORY_KEY_FILE``, default ``var/history_keys``), so a chain rewritten by someone who can write the
  database but lacks the key no longer verifies. One nullable column, no index (every step writes a row):
  adding it rewrites nothing on either database. Rows written before this revision have none until
  ``qifu audit seal`` signs them (once, right after upgrading: it signs only chains that verify).
- ``unmask_log.reason``: why someone revealed a contact's full number (PIPL: a purpose for every access);
  empty on rows logged before reasons were asked.

Revision ID: 0013_keyed_history
Revises: 0012_read_indexes
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_keyed_history'
down_revision = '0012_read_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('event', sa.Column('mac', sa.String(length=120), nullable=True))
    op.add_column('unmask_log', sa.Column('reason', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('unmask_log') as batch_op:
        batch_op.drop_column('reason')
    with op.batch_alter_table('event') as batch_op:
        batch_op.drop_column('mac')
