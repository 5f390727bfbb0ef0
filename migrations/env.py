"""Alembic environment: migrates the database named by QIFU_DATABASE_URL (default var/qifu.db)."""

from alembic import context

import handlers.models  # noqa: F401 - the domain tables share Base.metadata
from engine import db
from engine.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is None:
        engine = db.get_engine(context.config.get_main_option("sqlalchemy.url") or None)
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=db.database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
