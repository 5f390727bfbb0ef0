"""Database connection: one SQLAlchemy engine per URL, sessions, and SQLite tuning.

SQLite is the default (``var/qifu.db``, WAL journal); ``QIFU_DATABASE_URL`` points elsewhere, e.g.
``postgresql+psycopg://user@host/qifu``. Write transactions on SQLite start with ``BEGIN IMMEDIATE`` so two
processes never deadlock upgrading a read lock; the instance version column still decides who wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///var/qifu.db"

_engines: dict[str, Engine] = {}


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("QIFU_DATABASE_URL") or DEFAULT_URL


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: ``QIFU_DATABASE_URL`` or the SQLite file)."""
    url = database_url(url)
    if url not in _engines:
        _engines[url] = _create(url)
    return _engines[url]


def _create(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, future=True)
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None}, future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI types
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def dispose_all() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False, future=True)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
