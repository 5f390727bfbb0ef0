"""The schema has two descriptions, the typed models and the Alembic history: they must say the same thing.

A migrated database is compared with the models by Alembic's autogenerate (tables, columns, indexes — partial
ones by their WHERE —, foreign keys): an index declared in a model but missing from the migrations (or the
other way round) fails here, before it makes a page slow or a step write a page it need not.
"""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import handlers.models  # noqa: F401 - the domain tables share Base.metadata
import web.intake_models
import web.models
import web.sessions  # noqa: F401
from engine import db, migrate
from engine.models import Base
from web.read.search import TEXT_INDEX_OBJECTS

# Neither dialect reflects the inbox's expression index; test_inbox_scale checks that plans use it.
pytestmark = [pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*expression-based index")]


def _modelled(name: str | None, type_: str, parent: object) -> bool:
    """Everything but the case search's substring index, which is dialect-specific and no model (an FTS5
    table on SQLite, pg_trgm indexes on PostgreSQL: migration 0012, web.read.search.TEXT_INDEX_OBJECTS)."""
    return name not in TEXT_INDEX_OBJECTS


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_name": _modelled})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    assert _differences(db_url) == []


def test_the_newest_migrations_go_down_and_up_again(db_url: str) -> None:
    config = migrate.alembic_config(db_url)
    db.dispose(db_url)
    command.downgrade(config, "0009_read_side")
    assert _differences(db_url), "downgrading changed nothing: the test would not see a broken downgrade"
    command.upgrade(config, "head")
    assert _differences(db_url) == []


@pytest.mark.parametrize("name", ["ix_human_task_assignee", "ix_historic_task_completed_by"])
def test_the_indexes_a_step_writes_least_are_partial(db_url: str, name: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                sql = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).scalar()
            else:
                sql = connection.exec_driver_sql("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                                                 (name,)).scalar()
    finally:
        engine.dispose()
    assert sql is not None and "IS NOT NULL" in sql.upper(), sql
