"""Server-side sessions: the cookie holds only a random id, the session's content stays in ``web_session``.

Why not Flask's default session: it is a signed (readable, not encrypted) cookie kept by the browser, so
logging out cannot end it — a copy of the old cookie keeps working — and whatever a view puts in the
session (the enterprise's private tracking link) travels in the clear.

Why not Flask-Session 0.8: its SQLAlchemy backend is built on Flask-SQLAlchemy (``db.Model``,
``db.session``), which this app does not use (plain SQLAlchemy 2 through :mod:`engine.db`); it stores the
session id itself, so a database dump hands out live cookies; and its rows do not say whose session they
are, so "end every session of this user" (password change, disabled account) would mean decoding every row.

How it works:

- The cookie value is ``secrets.token_urlsafe(32)``; the row keeps only its SHA-256 (``sid_hash``).
- ``user_id`` names the logged-in user (taken from the session data by the ``owner_of`` function the app
  passes in), so :func:`end_user_sessions` deletes all of a user's sessions in one statement; the foreign
  key deletes them with the user.
- Lifetime: an idle timeout (``PERMANENT_SESSION_LIFETIME``) and an absolute one (``QIFU_SESSION_MAX_AGE``,
  seconds); an expired row counts as absent and is purged when a later session is created.
- Reading costs no write: a request that leaves the session unchanged writes nothing, except that the idle
  expiry is pushed forward at most once every :data:`REFRESH_EVERY`. The lookup is a read transaction
  (:meth:`engine.db.Database.read`), so a page view never queues behind writers.
- :func:`rotate` gives the session a new id (the old row is deleted): at login against session fixation, at
  logout so the old cookie is dead.

The data is serialised with Flask's own tagged JSON (tuples of flashed messages, bytes, Markup survive).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Request, Response, session
from flask.sessions import SecureCookieSession, SessionInterface, session_json_serializer
from sqlalchemy import ForeignKey, String, Text, delete, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.clock import SystemClock
from engine.models import Base, UTCDateTime

from .models import User

REFRESH_EVERY = timedelta(minutes=5)
DEFAULT_MAX_AGE = timedelta(hours=24)
SID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # what secrets.token_urlsafe(32) produces


class WebSession(Base):
    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey(User.id, ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    data: Mapped[str] = mapped_column(Text)


def hash_sid(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


def end_user_sessions(db_session: Session, user_id: int) -> int:
    """Delete every session of ``user_id`` (in the caller's transaction); returns how many there were."""
    result = db_session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(result.rowcount or 0)


def rotate() -> None:
    """Give the current session a new id when the response is sent; the old id stops working."""
    if isinstance(session, ServerSession):
        session.rotate_requested = True
        session.modified = True
    else:  # pragma: no cover - only when another session interface is installed
        raise RuntimeError("web.sessions.rotate needs the ServerSessionInterface")


class ServerSession(SecureCookieSession):
    """The session dict plus what the store needs to know about its row."""

    def __init__(self, initial: Mapping[str, Any] | None = None, *, sid: str | None = None,
                 created_at: datetime | None = None, expires_at: datetime | None = None) -> None:
        super().__init__(initial)
        self.sid = sid
        self.created_at = created_at
        self.expires_at = expires_at
        self.rotate_requested = False
        self.stale_cookie = False  # the request brought a cookie that names no live session


# --- the session interface ------------------------------------------------------------------------------
class ServerSessionInterface(SessionInterface):
    """Sessions stored in ``web_session`` of the app's ProcessEngine (``app.extensions["qifu_engine"]``).

    ``owner_of(data)`` returns the user id a session belongs to (None: anonymous). ``now`` is wall-clock
    time, not the engine's clock: a session lasts hours of real time, whatever business day the engine
    is told it is (tests move the engine's clock across weeks with a clerk logged in).
    """

    serializer = session_json_serializer

    def __init__(self, owner_of: Callable[[Mapping[str, Any]], int | None],
                 now: Callable[[], datetime] | None = None) -> None:
        self.owner_of = owner_of
        self.now = now or SystemClock().now

    # where and when
    @staticmethod
    def _engine(app: Flask) -> Any:
        return app.extensions["qifu_engine"]

    @staticmethod
    def _idle(app: Flask) -> timedelta:
        value = app.permanent_session_lifetime
        return value if isinstance(value, timedelta) else timedelta(seconds=int(value))

    @staticmethod
    def _max_age(app: Flask) -> timedelta:
        seconds = app.config.get("QIFU_SESSION_MAX_AGE")
        return timedelta(seconds=int(seconds)) if seconds else DEFAULT_MAX_AGE

    def _expiry(self, app: Flask, created_at: datetime, now: datetime) -> datetime:
        return min(now + self._idle(app), created_at + self._max_age(app))

    # Flask's hooks
    def open_session(self, app: Flask, request: Request) -> ServerSession:
        raw = request.cookies.get(self.get_cookie_name(app))
        if not raw:
            return ServerSession()
        engine = self._engine(app)
        row = None
        if SID_PATTERN.match(raw):
            with engine.read() as reader:  # every request: a read transaction, no write lock
                row = reader.execute(select(WebSession.data, WebSession.created_at, WebSession.expires_at)
                                     .where(WebSession.sid_hash == hash_sid(raw))).first()
        now = self.now()
        if row is None or row.expires_at <= now or row.created_at + self._max_age(app) <= now:
            fresh = ServerSession()
            fresh.stale_cookie = True
            return fresh
        try:
            data = self.serializer.loads(row.data)
        except ValueError:
            data = {}
        return ServerSession(data, sid=raw, created_at=row.created_at, expires_at=row.expires_at)

    def save_session(self, app: Flask, sess: Any, response: Response) -> None:
        if not isinstance(sess, ServerSession):  # pragma: no cover - a null session
            return
        if sess.accessed or sess.modified:
            response.vary.add("Cookie")
        engine = self._engine(app)
        now = self.now()
        if not sess:
            if sess.sid is not None:
                with engine.session() as db_session:
                    db_session.execute(delete(WebSession).where(WebSession.sid_hash == hash_sid(sess.sid)))
            if sess.sid is not None or sess.stale_cookie:
                self._delete_cookie(app, response)
            return
        data = self.serializer.dumps(dict(sess))
        if sess.sid is None or sess.rotate_requested:
            self._create(app, sess, data, now, response)
        elif sess.modified:
            with engine.session() as db_session:
                db_session.execute(update(WebSession).where(WebSession.sid_hash == hash_sid(sess.sid)).values(
                    data=data, user_id=self.owner_of(sess), expires_at=self._expiry(app, sess.created_at, now)))
        elif sess.expires_at is not None and sess.expires_at - now < self._idle(app) - REFRESH_EVERY:
            with engine.session() as db_session:
                db_session.execute(update(WebSession).where(WebSession.sid_hash == hash_sid(sess.sid))
                                   .values(expires_at=self._expiry(app, sess.created_at, now)))

    def _create(self, app: Flask, sess: ServerSession, data: str, now: datetime, response: Response) -> None:
        """A new row under a new id (the old row, if any, is deleted); expired rows are purged on the way."""
        sid = secrets.token_urlsafe(32)
        with self._engine(app).session() as db_session:
            if sess.sid is not None:
                db_session.execute(delete(WebSession).where(WebSession.sid_hash == hash_sid(sess.sid)))
            db_session.execute(delete(WebSession).where(WebSession.expires_at <= now))
            db_session.execute(insert(WebSession).values(
                sid_hash=hash_sid(sid), user_id=self.owner_of(sess), created_at=now,
                expires_at=self._expiry(app, now, now), data=data))
        sess.sid = sid
        response.set_cookie(self.get_cookie_name(app), sid, httponly=self.get_cookie_httponly(app),
                            domain=self.get_cookie_domain(app), path=self.get_cookie_path(app),
                            secure=self.get_cookie_secure(app), partitioned=self.get_cookie_partitioned(app),
                            samesite=self.get_cookie_samesite(app))

    def _delete_cookie(self, app: Flask, response: Response) -> None:
        response.delete_cookie(self.get_cookie_name(app), domain=self.get_cookie_domain(app),
                               path=self.get_cookie_path(app), secure=self.get_cookie_secure(app),
                               partitioned=self.get_cookie_partitioned(app),
                               samesite=self.get_cookie_samesite(app), httponly=self.get_cookie_httponly(app))
