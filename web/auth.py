"""Who is logged in, what they may see, and how logins are throttled.

- Passwords are stored only as werkzeug hashes (scrypt). An unknown user name costs the same hash check as a
  known one, so response times do not reveal which accounts exist.
- Throttling counts failed logins per user name AND client address in the ``login_attempt`` table: 5
  failures within 10 minutes lock that pair for 10 minutes. It lives in the database so every ``qifu serve``
  process (and a restarted one) agrees.
- Case visibility is :mod:`web.scope`'s (docs/domain.md "Case visibility").
- Sessions live on the server (:mod:`web.sessions`); the cookie is only a random id. Logout deletes the
  session row, :func:`set_password` and disabling an account (:func:`set_active`) delete every row of the
  user. The id handed to Flask-Login still carries a fingerprint of the password hash, so a password changed
  behind the app's back (an edited row) ends the old sessions too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask_login import LoginManager, UserMixin
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from engine.errors import QifuError

from .models import LoginAttempt, User, UserRole

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=10)
LOCK_TIME = timedelta(minutes=10)

SUPERVISOR_ROLES = frozenset({"督办", "管理员"})

_DUMMY_HASH = generate_password_hash("qifu-no-such-user")


class LoginRefused(QifuError):
    code = "login_refused"


class CurrentUser(UserMixin):
    """The logged-in user as a plain object (no database session attached), loaded once per request."""

    def __init__(self, row: User, region: str | None) -> None:
        self.user_id = row.id
        self.username = row.username
        self.display_name = row.display_name or row.username
        self.unit = row.unit_code
        self.region = region
        self.roles = frozenset(r.role for r in row.roles)
        self._active = bool(row.active)
        self.must_change_password = bool(row.must_change_password)  # a reset's temporary password (web.admin)
        self._fingerprint = fingerprint(row.password_hash)

    def get_id(self) -> str:
        return f"{self.user_id}:{self._fingerprint}"

    @property
    def is_active(self) -> bool:
        return self._active

    @property
    def is_supervisor(self) -> bool:
        return bool(self.roles & SUPERVISOR_ROLES)

    def holds_any(self, groups: list[str] | set[str] | frozenset[str]) -> bool:
        return bool(self.roles & set(groups))


def fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


# --- users ----------------------------------------------------------------------------------------------
def normalize(username: str) -> str:
    return (username or "").strip().lower()


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == normalize(username)))


def unit_region(session: Session, unit_code: str) -> str | None:
    from handlers.models import OrgUnit

    return session.scalar(select(OrgUnit.region).where(OrgUnit.code == unit_code))


def add_user(session: Session, username: str, password: str, *, unit: str, roles: list[str],
             display_name: str | None = None, now: datetime | None = None) -> User:
    """Create a user; refuses an existing name, an unknown unit, no role or a short password."""
    from engine.clock import SystemClock
    from handlers.models import OrgUnit

    name = normalize(username)
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        raise QifuError("用户名不能为空、不能含空白，最长 100 个字符")
    if find_user(session, name) is not None:
        raise QifuError(f"用户已存在: {name}")
    if session.scalar(select(OrgUnit.id).where(OrgUnit.code == unit)) is None:
        raise QifuError(f"未知单位编码: {unit}（请先加载参考数据）")
    clean_roles = sorted({r.strip() for r in roles if r and r.strip()})
    if not clean_roles:
        raise QifuError("至少需要一个角色")
    if any(len(r) > 100 for r in clean_roles):
        raise QifuError("角色名最长 100 个字符")
    check_password_rules(password)
    user = User(username=name, display_name=display_name, unit_code=unit,
                password_hash=generate_password_hash(password), active=True,
                created_at=now or SystemClock().now())
    user.roles = [UserRole(role=r) for r in clean_roles]
    session.add(user)
    session.flush()
    return user


def check_password_rules(password: str) -> None:
    if len(password or "") < 8:
        raise QifuError("密码至少 8 个字符")


def _existing_user(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise QifuError(f"用户不存在: {normalize(username)}")
    return user


def set_password(session: Session, username: str, password: str) -> int:
    """New password for ``username``; every session of the user ends in the same transaction.

    Returns how many sessions ended.
    """
    from .sessions import end_user_sessions

    user = _existing_user(session, username)
    check_password_rules(password)
    user.password_hash = generate_password_hash(password)
    session.flush()
    return end_user_sessions(session, user.id)


def set_active(session: Session, username: str, active: bool) -> int:
    """Enable or disable ``username``; disabling ends every session of the user in the same transaction.

    Returns how many sessions ended (0 when enabling).
    """
    from .sessions import end_user_sessions

    user = _existing_user(session, username)
    user.active = active
    session.flush()
    return 0 if active else end_user_sessions(session, user.id)


def load_current_user(session: Session, user_id: int) -> CurrentUser | None:
    row = session.get(User, user_id)
    if row is None:
        return None
    return CurrentUser(row, unit_region(session, row.unit_code))


# --- login and throttling -------------------------------------------------------------------------------
def locked_until(session: Session, username: str, ip: str, now: datetime) -> datetime | None:
    """When the (user, address) pair's lock ends, or None when it may try now.

    A lock starts at the 5th failure that falls within 10 minutes of the 4 before it (failures before a
    successful login do not count) and lasts 10 minutes. Attempts refused while locked are not recorded, so
    hammering does not extend the lock forever — but it never gets a password checked either.
    """
    since = now - FAILURE_WINDOW - LOCK_TIME
    rows = session.execute(select(LoginAttempt.at, LoginAttempt.success)
                           .where(LoginAttempt.username == normalize(username), LoginAttempt.ip == ip,
                                  LoginAttempt.at >= since)
                           .order_by(LoginAttempt.at, LoginAttempt.id)).all()
    failures: list[datetime] = []
    for at, success in rows:
        failures = [] if success else [*failures, at]
    until = None
    for i in range(MAX_FAILURES - 1, len(failures)):
        if failures[i] - failures[i - MAX_FAILURES + 1] <= FAILURE_WINDOW:
            until = failures[i] + LOCK_TIME
    return until if until is not None and until > now else None


def authenticate(session: Session, username: str, password: str, ip: str, now: datetime) -> CurrentUser:
    """Check a login and record the attempt in ``session``; refusals raise :class:`LoginRefused`.

    The failed attempt is recorded *before* raising: the caller must commit it anyway (see
    :func:`check_login`), otherwise a refused login would leave no trace and never lock.
    """
    name = normalize(username)[:100]
    until = locked_until(session, name, ip, now)
    if until is not None:
        minutes = max(1, int((until - now).total_seconds() + 59) // 60)
        raise LoginRefused(f"登录失败次数过多，请 {minutes} 分钟后再试")
    row = find_user(session, name) if name else None
    ok = check_password_hash(row.password_hash if row else _DUMMY_HASH, password or "")
    ok = ok and row is not None and row.active
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == name, LoginAttempt.ip == ip,
                                               LoginAttempt.at < now - timedelta(days=1)))
    session.add(LoginAttempt(username=name, ip=ip, at=now, success=bool(ok)))
    if not ok:
        raise LoginRefused("用户名或密码错误")
    return CurrentUser(row, unit_region(session, row.unit_code))


def check_login(engine, username: str, password: str, ip: str) -> CurrentUser:  # ProcessEngine
    """:func:`authenticate` in a transaction of its own that is committed also when the login is refused."""
    session = engine.db.writes()
    try:
        try:
            return authenticate(session, username, password, ip, engine.clock.now())
        finally:
            session.commit()
    finally:
        session.close()


def session_owner(data: Mapping[str, Any]) -> int | None:
    """Whose server-side session this is: the id part of Flask-Login's ``_user_id`` (``id:fingerprint``)."""
    raw = str(data.get("_user_id") or "").partition(":")[0]
    return int(raw) if raw.isdigit() else None


def init_login(app) -> LoginManager:  # flask.Flask
    """Server-side sessions (:mod:`web.sessions`) and Flask-Login over them."""
    from .sessions import ServerSessionInterface

    app.session_interface = ServerSessionInterface(session_owner)
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.login_message = "请先登录"
    manager.session_protection = "basic"

    @manager.user_loader
    def _load(user_id: str) -> CurrentUser | None:
        raw_id, _, fp = str(user_id).partition(":")
        if not raw_id.isdigit():
            return None
        engine = app.extensions["qifu_engine"]
        with engine.read() as session:  # every request: a read transaction, no write lock
            user = load_current_user(session, int(raw_id))
        if user is None or not user.is_active or user.get_id() != f"{raw_id}:{fp}":
            return None
        return user

    return manager
