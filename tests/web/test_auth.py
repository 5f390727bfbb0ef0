"""Login, logout, throttling, cookies, CSRF and the secret key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from web.models import LoginAttempt

from .conftest import csrf_token, login, post_form


def test_login_ok_shows_inbox(client):
    response = login(client, "pa_accept")
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "待办任务" in page and "综合受理（站一）" in page


def test_login_bad_password_refused_in_chinese(client):
    response = login(client, "pa_accept", "wrong-password")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still not logged in: redirected to /login


def test_unknown_user_gets_the_same_message(client):
    response = login(client, "nobody-here", "whatever1")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)


def test_pages_require_login(client):
    response = client.get("/tasks")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_throttled_after_five_failures_and_stored_in_database(client, web_app, web_engine, clock):
    for _ in range(5):
        assert login(client, "pa_accept", "wrong-password").status_code == 401
    # the right password is refused while locked — and the lock is in the database, not in this app
    response = login(client, "pa_accept")
    assert response.status_code == 401
    assert "登录失败次数过多" in response.get_data(as_text=True)
    from web.app import create_app

    fresh = create_app(engine=web_engine, config={"TESTING": True, "SECRET_KEY": "another"}).test_client()
    assert login(fresh, "pa_accept").status_code == 401
    with web_engine.session() as session:
        failures = session.scalar(select(func.count(LoginAttempt.id)).where(LoginAttempt.success.is_(False)))
    assert failures == 5  # attempts refused while locked are not counted: the lock cannot be extended forever
    # another user from the same address is not locked
    assert login(fresh, "pa_agent").status_code == 302
    # ten minutes later the lock is over
    clock.advance(minutes=10, seconds=1)
    assert login(client, "pa_accept").status_code == 302


def test_failures_spread_over_more_than_ten_minutes_do_not_lock(client, clock):
    for _ in range(4):
        login(client, "pa_accept", "wrong-password")
    clock.advance(minutes=11)
    login(client, "pa_accept", "wrong-password")
    assert login(client, "pa_accept").status_code == 302


def test_session_cookie_is_httponly_and_samesite_lax(client):
    response = login(client, "pa_accept")
    cookies = [v for k, v in response.headers.items() if k.lower() == "set-cookie" and v.startswith("session=")]
    assert cookies, "login sets the session cookie"
    flags = [p.strip().lower() for p in cookies[-1].split(";")]
    assert "httponly" in flags
    assert "samesite=lax" in flags


def test_post_without_csrf_token_is_refused(client):
    token = csrf_token(client, "/login")
    assert token
    response = client.post("/login", data={"username": "pa_accept", "password": "qifu-demo-2026"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # not logged in


def test_logout_requires_csrf_and_ends_session(client):
    login(client, "pa_accept")
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
    post_form(client, "/logout", {}, form_url="/")
    assert client.get("/").status_code == 302


def test_login_redirect_stays_on_this_site(client):
    token = csrf_token(client, "/login")
    response = client.post("/login?next=https://evil.example/x",
                           data={"csrf_token": token, "username": "pa_accept", "password": "qifu-demo-2026"})
    assert response.status_code == 302
    assert "evil.example" not in response.headers["Location"]


def test_security_headers(client):
    response = client.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_secret_key_from_env_or_generated_file(tmp_path, monkeypatch, web_engine):
    from web.app import create_app

    monkeypatch.delenv("QIFU_SECRET_KEY", raising=False)
    app = create_app(engine=web_engine, config={"QIFU_VAR_DIR": str(tmp_path)})
    key_file = tmp_path / "secret_key"
    assert key_file.exists() and app.config["SECRET_KEY"] == key_file.read_text().strip()
    assert len(app.config["SECRET_KEY"]) >= 32
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    again = create_app(engine=web_engine, config={"QIFU_VAR_DIR": str(tmp_path)})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]  # sessions survive a restart
    monkeypatch.setenv("QIFU_SECRET_KEY", "from-the-environment")
    assert create_app(engine=web_engine, config={"QIFU_VAR_DIR": str(tmp_path)}).config["SECRET_KEY"] == \
        "from-the-environment"


@pytest.mark.parametrize("delta,locked", [(timedelta(minutes=9, seconds=59), True), (timedelta(minutes=10, seconds=1), False)])
def test_lock_lasts_ten_minutes(web_engine, clock, delta, locked):
    from web.auth import locked_until

    start = clock.now()
    with web_engine.session() as session:
        for i in range(5):
            session.add(LoginAttempt(username="pa_accept", ip="1.2.3.4", at=start + timedelta(seconds=i),
                                     success=False))
    with web_engine.session() as session:
        until = locked_until(session, "pa_accept", "1.2.3.4", start + timedelta(seconds=4) + delta)
    assert (until is not None) == locked
