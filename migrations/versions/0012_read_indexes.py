"""read-side indexes that match the page queries (EXPLAINed at 100,000 cases), and a substring index for
case search

Each index answers a page's query from the index alone ("covering"), so a page reads no wide row it does not
show (a ledger row carries the description, an instance row its saved workflow — on SQLite the columns after
``state_json`` sit in overflow pages):

- ``ix_instance_open (id, status, due_at)``: the ledger, tracking and search join each case to its instance
  for the status and the earliest deadline only.
- ``ix_enterprise_case_region_status (region, ledger_status, overdue, unit)`` (was region, ledger_status): the
  ledger's counts per status and of the overdue, in status order, from the index.
- ``ix_enterprise_case_region_open (region, unit, ledger_status, overdue, instance_id, answered_working_days,
  business_key)``: the tracking board's groups per unit (in unit order, from the index) and its open-case list
  (overdue first, by deadline, by case number).
- ``ix_enterprise_case_region_received (region, received_at, unit)`` gains ``unit``: the ledger's count by
  month and the newest-first paging decide visibility from the index.
- ``ix_enterprise_case_scope (instance_id, region, unit)``: the inbox asks, per open task, whether its case is
  visible (one probe, no row read).
- ``ix_case_unit_unit_case (unit_code, case_id)`` replaces ``ix_case_unit_unit_code``: "cases involving a
  unit" without reading the rows.
- ``ix_enterprise_case_answered (region, answered_at)``, ``ix_rating_at``, ``ix_supervision_at``,
  ``ix_case_unit_at``: the briefing finds the cases a month touched from these, not by testing every case;
  ``ix_enterprise_case_region_closed (region, closed_at, received_at, unit)`` its backlog (not closed by the
  month's end).
- ``ix_enterprise_case_text_scan (received_at, id, region, unit, business_key, enterprise_name, credit_code)``:
  case search by text too short (or too common) for the trigram index scans this narrow index, newest first,
  instead of the wide rows.

Written by steps: ``ix_instance_open`` changes with an instance's status or earliest deadline, the region_open
and region_status entries with the ledger status and the overdue flag (region_open also with the answer); the others only at intake or when a rating,
supervision or transfer row is added.

Case search (``q``: case number, enterprise name or credit code containing the text) on 100,000 cases cannot
scan; the substring index is dialect-specific and not a model (``web.read.search.TEXT_INDEX_OBJECTS`` names
it; tests/test_migrations.py leaves these names out of its comparison):

- SQLite: ``enterprise_case_text``, an FTS5 table with the trigram tokenizer over (business_key,
  enterprise_name, credit_code), external content ``enterprise_case``, kept in step by three triggers.
  A batch migration that recreates ``enterprise_case`` drops the triggers: recreate them after it
  (tests/web/test_query_plans.py fails while they are missing).
- PostgreSQL: ``pg_trgm`` GIN indexes on the three columns (``CREATE EXTENSION pg_trgm``: a trusted
  extension, the database owner may create it).

Revision ID: 0012_read_indexes
Revises: 0011_incidents
"""
from alembic import op

revision = '0012_read_indexes'
down_revision = '0011_incidents'
branch_labels = None
depends_on = None

_FTS_COLUMNS = "business_key, enterprise_name, credit_code"
_SQLITE_TEXT = [
    f"CREATE VIRTUAL TABLE enterprise_case_text USING fts5({_FTS_COLUMNS}, content='enterprise_case', "
    "content_rowid='id', tokenize='trigram')",
    "INSERT INTO enterprise_case_text(enterprise_case_text) VALUES ('rebuild')",
    "CREATE TRIGGER enterprise_case_text_insert AFTER INSERT ON enterprise_case BEGIN "
    f"INSERT INTO enterprise_case_text(rowid, {_FTS_COLUMNS}) "
    "VALUES (new.id, new.business_key, new.enterprise_name, new.credit_code); END",
    "CREATE TRIGGER enterprise_case_text_delete AFTER DELETE ON enterprise_case BEGIN "
    f"INSERT INTO enterprise_case_text(enterprise_case_text, rowid, {_FTS_COLUMNS}) "
    "VALUES ('delete', old.id, old.business_key, old.enterprise_name, old.credit_code); END",
    "CREATE TRIGGER enterprise_case_text_update AFTER UPDATE OF id, business_key, enterprise_name, credit_code "
    "ON enterprise_case BEGIN "
    f"INSERT INTO enterprise_case_text(enterprise_case_text, rowid, {_FTS_COLUMNS}) "
    "VALUES ('delete', old.id, old.business_key, old.enterprise_name, old.credit_code); "
    f"INSERT INTO enterprise_case_text(rowid, {_FTS_COLUMNS}) "
    "VALUES (new.id, new.business_key, new.enterprise_name, new.credit_code); END",
]
_PG_TEXT = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_enterprise_case_key_trgm ON enterprise_case USING gin (business_key gin_trgm_ops)",
    "CREATE INDEX ix_enterprise_case_name_trgm ON enterprise_case USING gin (enterprise_name gin_trgm_ops)",
    "CREATE INDEX ix_enterprise_case_code_trgm ON enterprise_case USING gin (credit_code gin_trgm_ops)",
]


def upgrade() -> None:
    op.create_index('ix_instance_open', 'instance', ['id', 'status', 'due_at'])
    op.drop_index('ix_enterprise_case_region_status', table_name='enterprise_case')
    op.create_index('ix_enterprise_case_region_status', 'enterprise_case', ['region', 'ledger_status', 'overdue', 'unit'])
    op.create_index('ix_enterprise_case_region_open', 'enterprise_case',
                    ['region', 'unit', 'ledger_status', 'overdue', 'instance_id', 'answered_working_days',
                     'business_key'])
    op.drop_index('ix_enterprise_case_region_received', table_name='enterprise_case')
    op.create_index('ix_enterprise_case_region_received', 'enterprise_case', ['region', 'received_at', 'unit'])
    op.create_index('ix_enterprise_case_scope', 'enterprise_case', ['instance_id', 'region', 'unit'])
    op.create_index('ix_enterprise_case_answered', 'enterprise_case', ['region', 'answered_at'])
    op.create_index('ix_enterprise_case_region_closed', 'enterprise_case', ['region', 'closed_at', 'received_at', 'unit'])
    op.create_index('ix_enterprise_case_text_scan', 'enterprise_case',
                    ['received_at', 'id', 'region', 'unit', 'business_key', 'enterprise_name', 'credit_code'])
    op.drop_index('ix_case_unit_unit_code', table_name='case_unit')
    op.create_index('ix_case_unit_unit_case', 'case_unit', ['unit_code', 'case_id'])
    op.create_index('ix_case_unit_at', 'case_unit', ['at'])
    op.create_index('ix_rating_at', 'rating', ['at'])
    op.create_index('ix_supervision_at', 'supervision', ['at'])
    for sql in _SQLITE_TEXT if op.get_bind().dialect.name == 'sqlite' else _PG_TEXT:
        op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for name in ('enterprise_case_text_insert', 'enterprise_case_text_delete', 'enterprise_case_text_update'):
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
        op.execute('DROP TABLE IF EXISTS enterprise_case_text')
    else:
        for name in ('ix_enterprise_case_key_trgm', 'ix_enterprise_case_name_trgm', 'ix_enterprise_case_code_trgm'):
            op.execute(f'DROP INDEX IF EXISTS {name}')
    op.drop_index('ix_supervision_at', table_name='supervision')
    op.drop_index('ix_rating_at', table_name='rating')
    op.drop_index('ix_case_unit_at', table_name='case_unit')
    op.drop_index('ix_case_unit_unit_case', table_name='case_unit')
    op.create_index('ix_case_unit_unit_code', 'case_unit', ['unit_code'])
    op.drop_index('ix_enterprise_case_text_scan', table_name='enterprise_case')
    op.drop_index('ix_enterprise_case_region_closed', table_name='enterprise_case')
    op.drop_index('ix_enterprise_case_answered', table_name='enterprise_case')
    op.drop_index('ix_enterprise_case_scope', table_name='enterprise_case')
    op.drop_index('ix_enterprise_case_region_received', table_name='enterprise_case')
    op.create_index('ix_enterprise_case_region_received', 'enterprise_case', ['region', 'received_at'])
    op.drop_index('ix_enterprise_case_region_open', table_name='enterprise_case')
    op.drop_index('ix_enterprise_case_region_status', table_name='enterprise_case')
    op.create_index('ix_enterprise_case_region_status', 'enterprise_case', ['region', 'ledger_status'])
    op.drop_index('ix_instance_open', table_name='instance')
