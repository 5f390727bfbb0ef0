"""Database upkeep: keep the query planner's statistics current, so list pages keep using their indexes.

Both databases choose a plan from statistics about each table and index (SQLite ``sqlite_stat1``,
PostgreSQL ``pg_statistic``). Without them, or with numbers from when the database was small, a planner may
scan a whole table where an index answers a page in a few rows.

- :func:`analyze` — full statistics: after ``qifu init`` and after bulk loads (imports, the page bench).
- :func:`optimize` — the daily call: SQLite ``PRAGMA analysis_limit`` + ``ANALYZE`` (sampled, bounded
  time; ``PRAGMA optimize`` alone does nothing on a fresh connection before SQLite 3.46) and then
  ``PRAGMA optimize``; PostgreSQL ``ANALYZE`` (autovacuum usually has, but a bulk load may outrun it).

Neither changes a row anyone reads; on SQLite both take the write lock for the moment ``sqlite_stat1`` is
rewritten (one short transaction), on PostgreSQL ``ANALYZE`` takes no lock that blocks reads or writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine

from . import db

# Rows SQLite examines per index in the daily sampled ANALYZE: enough for the planner's choice, bounded time.
DAILY_ANALYSIS_LIMIT = 2000


@dataclass(frozen=True)
class Maintained:
    """What one call did, for the log: the statements run and how long they took."""

    dialect: str
    statements: tuple[str, ...]
    seconds: float


def _run(engine: Engine, statements: tuple[str, ...]) -> Maintained:
    t0 = time.perf_counter()
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            raw = conn.connection.dbapi_connection
            assert raw is not None
            for sql in statements:
                raw.execute(sql).fetchall()  # outside SQLAlchemy's BEGIN: ANALYZE makes its own transaction
        else:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for sql in statements:
                auto.exec_driver_sql(sql)
    return Maintained(engine.dialect.name, statements, time.perf_counter() - t0)


def analyze(url: str | None = None) -> Maintained:
    """Full statistics of every table and index (``ANALYZE``), e.g. after ``qifu init`` or a bulk load."""
    engine = db.get_engine(url)
    if engine.dialect.name == "sqlite":
        return _run(engine, ("PRAGMA analysis_limit=0", "ANALYZE", "PRAGMA optimize"))
    return _run(engine, ("ANALYZE",))


def optimize(url: str | None = None) -> Maintained:
    """The daily upkeep (sampled statistics, bounded time); schedule it once a day, at a quiet hour."""
    engine = db.get_engine(url)
    if engine.dialect.name == "sqlite":
        return _run(engine, (f"PRAGMA analysis_limit={DAILY_ANALYSIS_LIMIT}", "ANALYZE", "PRAGMA optimize",
                             "PRAGMA analysis_limit=0"))
    return _run(engine, ("ANALYZE",))
