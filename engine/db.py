"""Database connection: one SQLAlchemy engine per URL for writes and one for reads, sessions, SQLite tuning.

SQLite is the default (``var/qifu.db``, WAL journal); ``QIFU_DATABASE_URL`` points elsewhere, e.g.
``postgresql+psycopg://user@host/qifu``.

Writes and reads take different transactions, so that reads never block writes:

- a write transaction on SQLite starts with ``BEGIN IMMEDIATE``, so two processes never deadlock upgrading a
  read lock (the instance version column still decides who wins);
- a read transaction on SQLite is deferred and ``query_only``: in WAL mode it reads a snapshot and holds no
  lock a writer waits for; on PostgreSQL it is ``READ ONLY`` at the default isolation, without row locks.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///var/qifu.db"
WAL_AUTOCHECKPOINT = 10000  # pages; SQLite's own default (1000) syncs the disk every few dozen steps

_engines: dict[str, Engine] = {}
_read_engines: dict[str, Engine] = {}


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("QIFU_DATABASE_URL") or DEFAULT_URL


def get_engine(url: str | None = None, *, synchronous: str = "NORMAL",
               wal_autocheckpoint: int = WAL_AUTOCHECKPOINT) -> Engine:
    """The process-wide engine for ``url`` (default: ``QIFU_DATABASE_URL`` or the SQLite file).

    ``synchronous`` is SQLite's: ``NORMAL`` survives a crash of the process, ``FULL`` also a power loss.
    ``wal_autocheckpoint``: the log size (pages) at which a commit copies the log into the file and syncs.
    """
    url = database_url(url)
    if url not in _engines:
        _engines[url] = _create(url, synchronous=synchronous, wal_autocheckpoint=wal_autocheckpoint)
    return _engines[url]


def get_read_engine(url: str | None = None) -> Engine:
    """The process-wide engine for read-only transactions on ``url`` (see the module docstring)."""
    url = database_url(url)
    if url not in _read_engines:
        if url.startswith("sqlite"):
            _read_engines[url] = _create(url, read_only=True)
        else:
            _read_engines[url] = get_engine(url).execution_options(postgresql_readonly=True)
    return _read_engines[url]


def _create(url: str, *, read_only: bool = False, synchronous: str = "NORMAL",
            wal_autocheckpoint: int = WAL_AUTOCHECKPOINT) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, future=True)
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None}, future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        if read_only:
            cur.execute("PRAGMA query_only=ON")  # a read session that tries to write fails loudly
        cur.close()

    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # On the DBAPI connection: through SQLAlchemy's execution this statement cost more than a step's
        # own statements (every step begins a transaction).
        conn.connection.dbapi_connection.execute(begin)

    _replace_broken_connections(engine, path, read_only)
    return engine


# --- SQLite file faults: connections the pool must not keep (issue #11, fault tests in tests/faults/) ---------
_REPLACE_AFTER = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def _replace_broken_connections(engine: Engine, path: str, read_only: bool) -> None:
    """Keep the pool from holding on to a connection that cannot write, so service resumes by itself.

    SQLite opens a file it may not write read-only without a word, and such a connection stays read-only
    after the permissions are fixed; so a write connection over a file (or its -wal/-shm) this process
    cannot write is refused as SQLite itself would refuse the write. A connection that hit a read-only,
    can't-open or I/O error (the file replaced, moved or on a failing disk) is treated as disconnected: the
    pool drops it and the next checkout opens the file afresh.
    """
    if not read_only and path and path != ":memory:" and not path.startswith("file:"):
        @event.listens_for(engine, "connect", insert=True)
        def _refuse_unwritable(_dbapi_conn: Any, _record: Any) -> None:
            for name in (path, f"{path}-wal", f"{path}-shm"):
                if os.path.exists(name) and not os.access(name, os.W_OK):
                    error = sqlite3.OperationalError(f"attempt to write a readonly database ({name})")
                    error.sqlite_errorcode, error.sqlite_errorname = 8, "SQLITE_READONLY"
                    raise error

    @event.listens_for(engine, "handle_error")
    def _drop_broken(context: Any) -> None:
        name = getattr(context.original_exception, "sqlite_errorname", None) or ""
        if name.startswith(_REPLACE_AFTER):
            context.is_disconnect = True


def dispose_all() -> None:
    for engines in (_read_engines, _engines):
        for engine in engines.values():
            engine.dispose()
        engines.clear()


def dispose(url: str) -> None:
    """Close and forget the engines of ``url`` (tests drop their database afterwards)."""
    for engines in (_read_engines, _engines):
        engine = engines.pop(url, None)
        if engine is not None:
            engine.dispose()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False, future=True)


def read_session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_read_engine(url), expire_on_commit=False, future=True, autoflush=False)


@contextmanager
def read_scope(url: str | None = None) -> Iterator[Session]:
    """A read-only session; its transaction ends with the session (closing it rolls the connection back
    without expiring what was read, so rows stay usable after the block)."""
    session = read_session_factory(url)()
    try:
        yield session
    finally:
        session.close()


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


class Database:
    """One database, as the engine's services use it: write transactions and read-only ones."""

    def __init__(self, url: str | None = None, *, synchronous: str = "NORMAL",
                 wal_autocheckpoint: int = WAL_AUTOCHECKPOINT) -> None:
        self.url = database_url(url)
        get_engine(self.url, synchronous=synchronous, wal_autocheckpoint=wal_autocheckpoint)
        self.writes = session_factory(self.url)
        self.reads = read_session_factory(self.url)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any exception."""
        with session_scope(self.url) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction that no writer waits for."""
        with read_scope(self.url) as session:
            yield session
