"""The hot path's statements: SQLAlchemy Core, compiled once per database and run on the DBAPI cursor.

A step runs about eight statements. Through SQLAlchemy's execution machinery each one costs several times
what the database spends on it, so the statements of a step (:mod:`engine.instance_rows`,
:mod:`engine.task_rows`, :mod:`engine.jobs`, :mod:`engine.history`) are written as Core, compiled once per
dialect (and per set of columns, for inserts) and executed directly on the step transaction's DBAPI cursor.
Values are adapted as the column types would do it: an aware datetime becomes SQLite's stored text (UTC, as
:class:`~engine.models.UTCDateTime` stores it) and is read back aware with :func:`instant`. Everything else
(web pages, reports) keeps the ORM and Core's usual execution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Insert, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.schema import ColumnDefault

_SQLITE = sqlite.dialect(paramstyle="named")  # :name placeholders, which sqlite3 binds from a dict
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _to_sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the engine stores aware UTC instants only")
        return value.astimezone(UTC).strftime(_SQLITE_TIME)
    return value


def instant(value: Any) -> datetime | None:
    """A stored instant as read from the cursor, aware UTC (SQLite hands back its text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_CONNECTION = "qifu_dbapi_connection"  # session.info: (dialect, DBAPI connection) of its open transaction


@event.listens_for(Session, "after_begin")
def _remember_connection(session: Session, _transaction: Any, connection: Any) -> None:
    """Asking the session for its connection costs more than most of a step's statements: ask once."""
    session.info[_CONNECTION] = (connection.dialect, connection.connection)


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_CONNECTION, None)


def _connection(session: Session) -> tuple[Dialect, Any]:
    found = session.info.get(_CONNECTION)
    if found is None:
        connection = session.connection()
        found = session.info.get(_CONNECTION) or (connection.dialect, connection.connection)
    return found


class Prepared:
    """One Core statement, compiled on first use for the session's database and run without the ORM."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[str, dict[str, Any]]] = {}
        self._defaults: dict[str, Any] = {}
        if isinstance(statement, Insert):  # Python-side scalar defaults a Core insert would have filled in
            self.statement = statement.inline()
            self._defaults = {c.key: c.default.arg for c in statement.table.columns
                              if isinstance(c.default, ColumnDefault) and c.default.is_scalar}

    def _sql(self, dialect: Dialect, keys: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        """The SQL text and the values of the statement's own literals (``status = 'waiting'``)."""
        cache_key = (dialect.name, keys)
        found = self._compiled.get(cache_key)
        if found is None:
            target = _SQLITE if dialect.name == "sqlite" else dialect
            column_keys = list(keys) if isinstance(self.statement, Insert) else None
            compiled = self.statement.compile(dialect=target, column_keys=column_keys)
            literals = {name: bind.value for name, bind in compiled.binds.items()
                        if not bind.required and name in compiled.params}
            found = self._compiled[cache_key] = (str(compiled), literals)
        return found

    def _params(self, row: Mapping[str, Any], sqlite_values: bool) -> dict[str, Any]:
        values = {**self._defaults, **row} if self._defaults else dict(row)
        return {k: _to_sqlite(v) for k, v in values.items()} if sqlite_values else values

    def execute(self, session: Session, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None) -> Any:
        """Run the statement once (a mapping) or for many rows (a sequence of mappings); returns the cursor."""
        dialect, dbapi_connection = _connection(session)
        rows = [params or {}] if params is None or isinstance(params, Mapping) else list(params)
        sqlite_values = dialect.name == "sqlite"
        prepared = [self._params(r, sqlite_values) for r in rows]
        sql, literals = self._sql(dialect, tuple(sorted(prepared[0])))
        if literals:
            extra = {k: _to_sqlite(v) for k, v in literals.items()} if sqlite_values else literals
            prepared = [{**extra, **p} for p in prepared]
        assert dialect.dbapi is not None  # the dialect of a connection has its DBAPI module
        cursor = dbapi_connection.cursor()
        try:
            if len(prepared) == 1:
                cursor.execute(sql, prepared[0])
            else:
                cursor.executemany(sql, prepared)
        except dialect.dbapi.Error as exc:  # the same exception types SQLAlchemy's own execution raises
            raise DBAPIError.instance(sql, prepared, exc, dialect.dbapi.Error, dialect=dialect) from exc
        return cursor

    def one(self, session: Session, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The first row of a select as a dict by column name, or None."""
        cursor = self.execute(session, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip((d[0] for d in cursor.description), row, strict=True))

    def scalars(self, session: Session, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The first column of every row of a select."""
        return [row[0] for row in self.execute(session, params).fetchall()]
