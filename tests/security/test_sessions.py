"""Sessions end on the server: logout, a password change and a disabled account kill the old cookie, and the
cookie is an opaque random id — nothing secret (no tracking token, no user id) travels in it (web/sessions.py).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import event, func, select

from engine import db
from tests.web.conftest import csrf_token, login, logout, post_form
from tests.web.intake_support import CASE_FIELDS, ensure_deployed
from web.models import User
from web.sessions import SID_PATTERN, WebSession, hash_sid

LINK = re.compile(r'id="tracking-link" href="([^"]*/track/([^"]+))"')


def session_cookie(client: Any) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "the client holds a session cookie"
    return cookie.value


def replay(client: Any, value: str) -> Any:
    """Put ``value`` back as the session cookie (an attacker's copy of it) and open the inbox."""
    client.set_cookie("session", value)
    return client.get("/")


def session_rows(engine: Any, username: str | None = None) -> list[WebSession]:
    with engine.session() as session:
        query = select(WebSession)
        if username is not None:
            query = query.join(User, User.id == WebSession.user_id).where(User.username == username)
        rows = list(session.scalars(query))
        session.expunge_all()
    return rows


def on_login_page(response: Any) -> bool:
    return response.status_code == 302 and "/login" in response.headers["Location"]


# --- logout, password change, disable ------------------------------------------------------------------
def test_after_logout_the_old_cookie_gets_the_login_page(client, other_client, web_engine) -> None:
    login(client, "pa_accept")
    assert client.get("/").status_code == 200
    stolen = session_cookie(client)
    logout(client)
    assert session_rows(web_engine, "pa_accept") == []  # the row is gone on the server
    assert all(row.sid_hash != hash_sid(stolen) for row in session_rows(web_engine))  # not just anonymous now
    assert on_login_page(replay(other_client, stolen))  # a copy of the cookie taken before the logout
    assert on_login_page(replay(client, stolen))


def test_login_gives_a_new_session_id(client, web_engine) -> None:
    """Session fixation: an id planted before the login never becomes a logged-in session."""
    csrf_token(client, "/login")  # the login form puts its CSRF token in an anonymous session
    before = session_cookie(client)
    login(client, "pa_accept")
    after = session_cookie(client)
    assert after != before
    with web_engine.session() as session:
        assert session.scalar(select(WebSession.id).where(WebSession.sid_hash == hash_sid(before))) is None
    assert client.get("/").status_code == 200


def test_a_password_change_ends_every_session_of_that_user(web_app, web_db_url, web_engine,
                                                           monkeypatch) -> None:
    from web.cli import main

    laptop, phone, colleague = web_app.test_client(), web_app.test_client(), web_app.test_client()
    login(laptop, "pa_accept")
    login(phone, "pa_accept")
    login(colleague, "pa_agent")
    stolen = session_cookie(laptop)
    assert len(session_rows(web_engine, "pa_accept")) == 2

    monkeypatch.setenv("QIFU_DATABASE_URL", web_db_url)
    result = CliRunner().invoke(main, ["--json", "user", "passwd", "pa_accept", "--password-stdin"],
                                input="a-new-long-password\n")
    assert result.exit_code == 0, result.output
    assert '"sessions_ended": 2' in result.output

    assert session_rows(web_engine, "pa_accept") == []
    assert on_login_page(laptop.get("/")) and on_login_page(phone.get("/"))
    assert on_login_page(replay(web_app.test_client(), stolen))
    assert colleague.get("/").status_code == 200  # another user's session is untouched
    assert login(web_app.test_client(), "pa_accept", "a-new-long-password").status_code == 302


def test_a_refused_password_change_ends_nothing(client, web_db_url, web_engine, monkeypatch) -> None:
    from web.cli import main

    login(client, "pa_accept")
    monkeypatch.setenv("QIFU_DATABASE_URL", web_db_url)
    result = CliRunner().invoke(main, ["user", "passwd", "pa_accept", "--password-stdin"], input="short\n")
    assert result.exit_code == 2 and "密码至少 8 个字符" in result.output
    assert client.get("/").status_code == 200
    assert len(session_rows(web_engine, "pa_accept")) == 1


def test_disabling_an_account_ends_its_sessions(client, web_app, web_db_url, web_engine,
                                                monkeypatch) -> None:
    from web.cli import main

    login(client, "pa_accept")
    stolen = session_cookie(client)
    monkeypatch.setenv("QIFU_DATABASE_URL", web_db_url)
    result = CliRunner().invoke(main, ["user", "disable", "pa_accept"])
    assert result.exit_code == 0, result.output
    assert session_rows(web_engine, "pa_accept") == []
    assert on_login_page(client.get("/"))
    assert on_login_page(replay(web_app.test_client(), stolen))
    assert login(web_app.test_client(), "pa_accept").status_code == 401  # and no new login

    assert CliRunner().invoke(main, ["user", "enable", "pa_accept"]).exit_code == 0
    assert login(web_app.test_client(), "pa_accept").status_code == 302


def test_unknown_user_is_refused_by_the_cli(web_db_url, monkeypatch) -> None:
    from web.cli import main

    monkeypatch.setenv("QIFU_DATABASE_URL", web_db_url)
    result = CliRunner().invoke(main, ["--json", "user", "disable", "nobody"])
    assert result.exit_code == 2 and "用户不存在" in result.output


# --- what the cookie holds -----------------------------------------------------------------------------
def test_the_cookie_is_an_opaque_id_stored_only_hashed(client, web_app, web_engine) -> None:
    login(client, "pa_accept")
    value = session_cookie(client)
    assert SID_PATTERN.match(value), value
    assert _not_a_signed_cookie(web_app, value)  # Flask's own cookie would decode to the session content
    rows = session_rows(web_engine, "pa_accept")
    assert [r.sid_hash for r in rows] == [hash_sid(value)]
    with web_engine.session() as session:  # the database never holds the cookie value itself
        assert session.scalar(select(func.count(WebSession.id)).where(WebSession.sid_hash == value)) == 0
        assert all(value not in r.data for r in rows)


def _not_a_signed_cookie(app: Any, value: str) -> bool:
    from itsdangerous import BadSignature

    try:
        SecureCookieSessionInterface().get_signing_serializer(app).loads(value)
    except BadSignature:
        return True
    return False


def test_the_tracking_token_stays_out_of_the_cookie_and_is_shown_once(web_app, client, web_engine) -> None:
    ensure_deployed(web_engine, "fenghua_one_place")
    response = post_form(client, "/submit", CASE_FIELDS)
    assert response.status_code == 303, response.get_data(as_text=True)
    cookies = response.headers.getlist("Set-Cookie")
    value = session_cookie(client)
    assert SID_PATTERN.match(value) and _not_a_signed_cookie(web_app, value)

    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    match = LINK.search(page.get_data(as_text=True))
    assert match, "the receipt shows the private link"
    token = match.group(2)
    assert all(token not in c for c in cookies + page.headers.getlist("Set-Cookie"))
    assert token not in value
    assert all(token not in row.data for row in session_rows(web_engine))  # shown, then gone from the row too
    again = client.get("/submit/done")  # once only
    assert again.status_code == 302 and again.headers["Location"].endswith("/submit")


# --- lifetime and writes -------------------------------------------------------------------------------
def test_a_busy_session_still_ends_at_the_absolute_limit(client, web_app) -> None:
    from engine.clock import SystemClock

    login(client, "pa_accept")
    start = SystemClock().now()
    for hours in (7, 14, 21):  # each visit within the idle time pushes the expiry on
        web_app.session_interface.now = lambda h=hours: start + timedelta(hours=h)
        assert client.get("/").status_code == 200, hours
    web_app.session_interface.now = lambda: start + timedelta(hours=24, minutes=1)  # idle 3 hours only
    assert on_login_page(client.get("/"))


def test_an_idle_session_ends_after_the_idle_time(client, web_app) -> None:
    from engine.clock import SystemClock

    login(client, "pa_accept")
    start = SystemClock().now()
    web_app.session_interface.now = lambda: start + timedelta(hours=8, minutes=1)
    assert on_login_page(client.get("/"))


@pytest.fixture
def session_writes(web_db_url: str):
    """The INSERT/UPDATE/DELETE statements on web_session, as they reach the database."""
    statements: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany) -> None:
        if "web_session" in statement and not statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = db.get_engine(web_db_url)
    event.listen(engine, "before_cursor_execute", listen)
    yield statements
    event.remove(engine, "before_cursor_execute", listen)


def test_reading_pages_writes_no_session_row(client, web_app, session_writes) -> None:
    from engine.clock import SystemClock

    login(client, "pa_accept")
    client.get("/")
    session_writes.clear()
    start = SystemClock().now()
    web_app.session_interface.now = lambda: start + timedelta(minutes=4)
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert session_writes == []
    web_app.session_interface.now = lambda: start + timedelta(minutes=6)  # the expiry is pushed on, once
    client.get("/")
    client.get("/")
    assert len(session_writes) == 1 and session_writes[0].lstrip().upper().startswith("UPDATE")


def test_sessions_work_on_both_databases(case_engine, tmp_path) -> None:
    """The store on SQLite and PostgreSQL: login, a read, logout, the old cookie dead."""
    from web.app import create_app
    from web.auth import add_user

    with case_engine.session() as session:
        add_user(session, "clerk", "long-enough-pw", unit="PA01", roles=["综合受理板块"], now=case_engine.clock.now())
    app = create_app(engine=case_engine, config={"TESTING": True, "SECRET_KEY": "k",
                                                 "QIFU_VAR_DIR": str(tmp_path / "var")})
    client = app.test_client()
    assert login(client, "clerk", "long-enough-pw").status_code == 302
    assert client.get("/").status_code == 200
    stolen = session_cookie(client)
    logout(client)
    assert on_login_page(replay(app.test_client(), stolen))
    assert session_rows(case_engine, "clerk") == []
