"""The database is down, full, read-only or busy: answer 503 with ``Retry-After``, never a traceback or a 500.

Why a module of its own: the same question ("is this exception an outage of the database, and which?") is
asked by two error handlers in :mod:`web.app` — one for exceptions a view raises, one for the 500 Flask makes
of exceptions raised outside a view (opening or saving the server-side session, ``before_request``) — and
the answer must not depend on the path the error took through the engine.

What counts as an outage:

- :class:`sqlalchemy.exc.OperationalError` — SQLAlchemy's own execution and the engine's hot path
  (:class:`engine.sql.Prepared` wraps the driver's error with ``DBAPIError.instance``, which picks the same
  subclass) both raise it for a refused or lost connection, a server shutting down, SQLite's "unable to open
  database file", "database or disk is full", "attempt to write a readonly database", "database is locked";
- any :class:`~sqlalchemy.exc.DBAPIError` whose connection SQLAlchemy found dead (``connection_invalidated``),
  and PostgreSQL's read-only transaction error (SQLSTATE 25006: a standby, or a database set read-only);
- :class:`~sqlalchemy.exc.InterfaceError` (the driver's connection is closed) and the pool's
  :class:`~sqlalchemy.exc.TimeoutError` (every connection is taken).

The exception is looked for along ``__cause__``/``__context__`` too, so an outage wrapped by another error on
its way up is still recognised. Nothing was committed when any of these is raised: the step's transaction is
rolled back (or never began), which is why the page can say "本次操作没有保存".
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request
from sqlalchemy import exc as sa_exc

RETRY_AFTER_SECONDS = {"unavailable": 5, "busy": 5, "full": 60, "read_only": 60}


@dataclass(frozen=True)
class Outage:
    """What went wrong with the database, in the words people and API clients get."""

    reason: str  # unavailable | busy | full | read_only
    code: str  # the API's error code
    title: str
    message: str
    detail: str  # the driver's message, for the log only

    @property
    def retry_after(self) -> int:
        return RETRY_AFTER_SECONDS[self.reason]


_TEXTS: dict[str, tuple[str, str, str]] = {
    "unavailable": ("database_unavailable", "服务暂不可用",
                    "数据库暂时无法访问，本次操作没有保存。请稍后重试；问题持续时请联系管理员。"),
    "busy": ("database_busy", "服务繁忙",
             "数据库正忙，本次操作没有保存。请稍后重试。"),
    "full": ("database_full", "服务暂不可用",
             "数据库所在磁盘已满，本次操作没有保存。请联系管理员清理磁盘空间后重试。"),
    "read_only": ("database_read_only", "服务暂不可用",
                  "数据库当前只读（文件权限或只读的数据库服务器），本次操作没有保存。请联系管理员后重试。"),
}

_SQLITE_REASONS = (("SQLITE_FULL", "full"), ("SQLITE_READONLY", "read_only"), ("SQLITE_BUSY", "busy"),
                   ("SQLITE_LOCKED", "busy"))
_PG_REASONS = {"53100": "full", "25006": "read_only", "55P03": "busy", "57014": "busy", "53300": "busy"}


def _reason(error: BaseException) -> str | None:
    """The outage ``error`` itself is (no look along its causes), or None."""
    if isinstance(error, sa_exc.TimeoutError):
        return "busy"
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    orig = error.orig
    name = getattr(orig, "sqlite_errorname", None) or ""
    for prefix, reason in _SQLITE_REASONS:
        if name.startswith(prefix):
            return reason
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _PG_REASONS:
        return _PG_REASONS[sqlstate]
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError) or error.connection_invalidated:
        return "unavailable"
    return None


def outage_of(error: BaseException | None) -> Outage | None:
    """The database outage behind ``error`` (itself, its causes, or a 500's original exception), or None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        reason = _reason(error)
        if reason is not None:
            code, title, message = _TEXTS[reason]
            lines = str(getattr(error, "orig", None) or error).strip().splitlines()
            detail = (lines[0] if lines else type(error).__name__)[:300]
            return Outage(reason, code, title, message, detail)
        error = getattr(error, "original_exception", None) or error.__cause__ or error.__context__
    return None


def wants_json() -> bool:
    """Whether the client prefers JSON to a page (``Accept: application/json``); ties go to the page."""
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
