"""系统管理 pages (#13 item 6): users, units and liaisons, API clients and the admin log — for 管理员 only, every
change a CSRF-protected POST recorded in the admin log, every bad input refused in Chinese with nothing changed.

The working-day calendar pages are in ``test_admin_calendar.py``; the services on both databases in
``test_admin_services.py``.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from handlers.models import OrgUnit
from tests.web.conftest import csrf_token, login
from web.intake_models import ApiClient
from web.models import AdminLog, User

PAGES = ["/admin/", "/admin/users", "/admin/users/new", "/admin/units", "/admin/units/FH-JXJ", "/admin/api-clients",
         "/admin/calendar", "/admin/log"]


def html(response) -> str:
    return response.get_data(as_text=True)


def post(client, url: str, data: dict, *, form_url: str | None = None, follow: bool = False):
    return client.post(url, data={"csrf_token": csrf_token(client, form_url or url), **data},
                       follow_redirects=follow)


def log_rows(engine, kind: str | None = None) -> list[AdminLog]:
    with engine.session() as session:
        query = select(AdminLog).order_by(AdminLog.id)
        if kind:
            query = query.where(AdminLog.kind == kind)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def user_row(engine, username: str) -> User | None:
    with engine.session() as session:
        row = session.scalar(select(User).where(User.username == username))
        if row is not None:
            _ = row.role_names
            session.expunge(row)
        return row


def user_id(engine, username: str) -> int:
    row = user_row(engine, username)
    assert row is not None, username
    return row.id


def snapshot(engine) -> tuple:
    """Everything an admin page may change: users with roles, units, API clients, the log."""
    with engine.session() as session:
        users = [(u.username, u.display_name, u.unit_code, tuple(u.role_names), u.active, u.password_hash,
                  u.must_change_password) for u in session.scalars(select(User).order_by(User.id))]
        units = [(u.code, u.name, u.phone, u.address, u.liaison_name, u.liaison_phone, u.edited)
                 for u in session.scalars(select(OrgUnit).order_by(OrgUnit.id))]
        clients = [(c.name, c.active, c.channels) for c in session.scalars(select(ApiClient).order_by(ApiClient.id))]
        logged = session.scalar(select(func.count(AdminLog.id)))
    return users, units, clients, logged


def error_text(page: str) -> str:
    found = re.search(r'<div class="alert"[^>]*>(.*?)</div>', page, re.S) or re.search(r'class="error">(.*?)<', page)
    return found.group(1).strip() if found else ""


# --- who may look ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitors_get_the_login_page(client, url) -> None:
    response = client.get(url)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("user", ["fh_staff", "auditor", "fh_super", "designer"])
def test_everyone_but_administrators_gets_403_and_no_nav_link(client, web_engine, user) -> None:
    login(client, user)
    for url in PAGES:
        assert client.get(url).status_code == 403, url
    assert "nav-admin" not in html(client.get("/"))
    token = csrf_token(client, "/")  # a valid token of the user's own session: the role check still refuses
    before = snapshot(web_engine)
    for url, data in [("/admin/users/new", {"username": "x_new", "display_name": "新人", "unit": "PA01",
                                            "roles": "管理员"}),
                      (f"/admin/users/{user_id(web_engine, 'fh_unit')}/disable", {}),
                      (f"/admin/users/{user_id(web_engine, 'admin')}/reset-password", {}),
                      ("/admin/units/FH-JXJ", {"name": "区经信局", "liaison_name": "冒充"}),
                      ("/admin/api-clients", {"name": "x", "channels": "wechat_account", "process_key": "web_case"}),
                      ("/admin/calendar/day/apply", {"day": "2026-10-04", "kind": "work"})]:
        assert client.post(url, data={"csrf_token": token, **data}).status_code == 403, url
    assert snapshot(web_engine) == before


def test_an_administrator_has_the_nav_link_and_the_index_links_every_area(client) -> None:
    login(client, "admin")
    page = html(client.get("/"))
    assert 'id="nav-admin"' in page and 'href="/admin/"' in page
    index = html(client.get("/admin/"))
    for href in ["/admin/users", "/admin/units", "/admin/api-clients", "/admin/calendar", "/admin/incidents/",
                 "/admin/log"]:
        assert f'href="{href}"' in index, href


def test_every_change_needs_the_csrf_token(client, web_engine) -> None:
    login(client, "admin")
    before = snapshot(web_engine)
    for url, data in [("/admin/users/new", {"username": "csrf_user", "display_name": "无令牌", "unit": "PA01",
                                            "roles": "综合受理板块"}),
                      (f"/admin/users/{user_id(web_engine, 'fh_unit')}/disable", {}),
                      (f"/admin/users/{user_id(web_engine, 'fh_unit')}/reset-password", {}),
                      ("/admin/units/FH-JXJ", {"name": "区经信局", "liaison_name": "无令牌"}),
                      ("/admin/api-clients", {"name": "csrf", "channels": "wechat_account", "process_key": "web_case"}),
                      ("/admin/calendar/day/apply", {"day": "2026-10-04", "kind": "work"}),
                      ("/admin/calendar/import/apply", {"content": "year=2027\n", "filename": "x.csv"})]:
        response = client.post(url, data=data)
        assert response.status_code == 400 and "CSRF" in html(response), url
        response = client.post(url, data={"csrf_token": "forged", **data})
        assert response.status_code == 400, url
    assert snapshot(web_engine) == before


# --- users ------------------------------------------------------------------------------------------------------
def test_create_user_shows_a_temporary_password_once_that_must_be_replaced(client, other_client, web_engine) -> None:
    login(client, "admin")
    response = post(client, "/admin/users/new", {"username": "PA_Clerk2", "display_name": "王受理", "unit": "PA01",
                                                 "roles": ["综合受理板块", "代办服务板块"], "other_roles": "招商服务板块"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    temporary = re.search(r'id="temporary-password"[^>]*>([^<]+)<', html(response)).group(1)
    row = user_row(web_engine, "pa_clerk2")
    assert row.display_name == "王受理" and row.unit_code == "PA01" and row.must_change_password
    assert row.role_names == ["代办服务板块", "招商服务板块", "综合受理板块"]
    assert temporary not in row.password_hash and temporary not in html(client.get("/admin/users"))
    [entry] = log_rows(web_engine, "user_created")
    assert entry.actor == "admin" and entry.target == "pa_clerk2" and temporary not in entry.details_json
    assert "王受理" in html(client.get("/admin/log"))

    # the new user: the temporary password opens only the page that replaces it
    assert login(other_client, "pa_clerk2", temporary).status_code == 302
    for url in ["/", "/tasks", "/search/cases"]:
        response = other_client.get(url)
        assert response.status_code == 302 and response.headers["Location"].endswith("/account/password"), url
    assert "临时密码" in html(other_client.get("/account/password"))
    token = csrf_token(other_client, "/account/password")
    wrong = other_client.post("/account/password", data={"csrf_token": token, "current": "not-it",
                                                         "new": "my-own-password", "confirm": "my-own-password"})
    assert wrong.status_code == 400 and "当前密码不正确" in html(wrong)
    mismatch = other_client.post("/account/password", data={"csrf_token": token, "current": temporary,
                                                            "new": "my-own-password", "confirm": "my-own-passw0rd"})
    assert mismatch.status_code == 400 and "不一致" in html(mismatch)
    short = other_client.post("/account/password", data={"csrf_token": token, "current": temporary,
                                                         "new": "short", "confirm": "short"})
    assert short.status_code == 400 and "至少 8" in html(short)
    assert user_row(web_engine, "pa_clerk2").must_change_password
    done = other_client.post("/account/password", data={"csrf_token": token, "current": temporary,
                                                        "new": "my-own-password", "confirm": "my-own-password"})
    assert done.status_code == 302 and "/login" in done.headers["Location"]
    assert other_client.get("/tasks").status_code == 302  # logged out: every session of the user ended
    assert not user_row(web_engine, "pa_clerk2").must_change_password
    assert login(other_client, "pa_clerk2", temporary).status_code == 401
    assert login(other_client, "pa_clerk2", "my-own-password").status_code == 302
    assert other_client.get("/tasks").status_code == 200


@pytest.mark.parametrize("data, message", [
    ({"username": ""}, "请填写用户名"),
    ({"username": "a" * 101}, "用户名最长 100 个字符"),
    ({"username": "has space"}, "用户名只能含字母"),
    ({"username": "x"}, "用户名应为 2–100 个字符"),
    ({"username": "fh_staff"}, "用户已存在: fh_staff"),
    ({"username": "FH_STAFF"}, "用户已存在: fh_staff"),
    ({"display_name": ""}, "请填写姓名"),
    ({"display_name": "长" * 51}, "姓名最长 50 个字符"),
    ({"display_name": "王\u202e五"}, "控制字符"),
    ({"unit": ""}, "请选择单位"),
    ({"unit": "NO-SUCH"}, "未知单位编码"),
    ({"roles": [], "other_roles": ""}, "至少需要一个角色"),
    ({"roles": [], "other_roles": "角" * 51}, "角色名过长"),
    ({"roles": [], "other_roles": "、".join(f"板块{i}" for i in range(21))}, "角色过多"),
])
def test_bad_user_input_is_refused_in_chinese_and_changes_nothing(client, web_engine, data, message) -> None:
    login(client, "admin")
    before = snapshot(web_engine)
    form = {"username": "new_clerk", "display_name": "新同事", "unit": "PA01", "roles": ["综合受理板块"], **data}
    response = post(client, "/admin/users/new", form)
    assert response.status_code == 400
    assert message in html(response), error_text(html(response))
    assert snapshot(web_engine) == before


def test_edit_roles_unit_and_name_takes_effect_at_the_next_request_and_is_logged(client, other_client,
                                                                                 web_engine) -> None:
    login(client, "admin")
    login(other_client, "pa_agent")
    assert other_client.get("/intake").status_code == 403  # 代办服务板块 does not register cases
    uid = user_id(web_engine, "pa_agent")
    url = f"/admin/users/{uid}"
    page = html(client.get(url))
    assert 'value="代办服务板块" checked' in page
    response = post(client, url, {"display_name": "代办兼受理", "unit": "PA01", "roles": ["综合受理板块", "代办服务板块"],
                                  "other_roles": ""}, follow=True)
    assert "已保存用户 pa_agent" in html(response)
    row = user_row(web_engine, "pa_agent")
    assert row.role_names == ["代办服务板块", "综合受理板块"] and row.display_name == "代办兼受理"
    assert other_client.get("/intake").status_code == 200
    [entry] = log_rows(web_engine, "user_updated")
    assert "角色 代办服务板块 → 代办服务板块、综合受理板块" in entry.summary and entry.actor == "admin"
    unchanged = post(client, url, {"display_name": "代办兼受理", "unit": "PA01",
                                   "roles": ["综合受理板块", "代办服务板块"]}, follow=True)
    assert "没有修改" in html(unchanged) and len(log_rows(web_engine, "user_updated")) == 1
    before = snapshot(web_engine)
    moved = post(client, url, {"display_name": "代办兼受理", "unit": "MARS", "roles": ["代办服务板块"]})
    assert moved.status_code == 400 and "未知单位编码" in html(moved)
    assert snapshot(web_engine) == before


def test_unknown_user_ids_are_404(client) -> None:
    login(client, "admin")
    assert client.get("/admin/users/999999").status_code == 404
    assert client.get("/admin/users/abc").status_code == 404
    token = csrf_token(client, "/admin/users")
    assert client.post("/admin/users/999999/disable", data={"csrf_token": token}).status_code == 404
    assert client.post("/admin/users/999999/reset-password", data={"csrf_token": token}).status_code == 404


def test_the_last_administrator_stays(client, web_engine) -> None:
    login(client, "admin")
    uid = user_id(web_engine, "admin")
    before = snapshot(web_engine)
    own = post(client, f"/admin/users/{uid}", {"display_name": "系统管理员", "unit": "FH-CENTRE", "roles": ["审计"]})
    assert own.status_code == 400 and "最后一名启用的管理员" in html(own)
    disabled = post(client, f"/admin/users/{uid}/disable", {}, form_url=f"/admin/users/{uid}", follow=True)
    assert "不能停用自己的账号" in html(disabled)
    reset = post(client, f"/admin/users/{uid}/reset-password", {}, form_url=f"/admin/users/{uid}", follow=True)
    assert "不能重置自己的密码" in html(reset)
    assert snapshot(web_engine) == before


def test_disable_ends_the_users_sessions_and_enable_lets_them_in_again(client, other_client, web_engine) -> None:
    login(client, "admin")
    login(other_client, "fh_unit")
    assert other_client.get("/tasks").status_code == 200
    uid = user_id(web_engine, "fh_unit")
    response = post(client, f"/admin/users/{uid}/disable", {}, form_url=f"/admin/users/{uid}", follow=True)
    assert "已停用用户 fh_unit，结束其 1 个登录会话" in html(response)
    assert other_client.get("/tasks").status_code == 302
    assert login(other_client, "fh_unit").status_code == 401
    again = post(client, f"/admin/users/{uid}/disable", {}, form_url=f"/admin/users/{uid}", follow=True)
    assert "已是停用状态" in html(again)
    post(client, f"/admin/users/{uid}/enable", {}, form_url=f"/admin/users/{uid}")
    assert login(other_client, "fh_unit").status_code == 302
    assert [r.kind for r in log_rows(web_engine)] == ["user_disabled", "user_enabled"]


def test_reset_password_ends_sessions_and_the_old_password(client, other_client, web_engine) -> None:
    login(client, "admin")
    login(other_client, "fh_staff")
    uid = user_id(web_engine, "fh_staff")
    response = post(client, f"/admin/users/{uid}/reset-password", {}, form_url=f"/admin/users/{uid}")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    temporary = re.search(r'id="temporary-password"[^>]*>([^<]+)<', html(response)).group(1)
    assert len(temporary) >= 12
    assert other_client.get("/tasks").status_code == 302
    assert login(other_client, "fh_staff").status_code == 401  # the demo password is gone
    assert login(other_client, "fh_staff", temporary).status_code == 302
    assert other_client.get("/tasks").headers["Location"].endswith("/account/password")
    [entry] = log_rows(web_engine, "password_reset")
    assert entry.target == "fh_staff" and temporary not in entry.details_json + entry.summary
    # a second reset replaces the first temporary password
    second = post(client, f"/admin/users/{uid}/reset-password", {}, form_url=f"/admin/users/{uid}")
    other = re.search(r'id="temporary-password"[^>]*>([^<]+)<', html(second)).group(1)
    assert other != temporary
    assert other_client.get("/account/password").status_code == 302  # the second reset ended that session too
    assert login(other_client, "fh_staff", temporary).status_code == 401
    assert login(other_client, "fh_staff", other).status_code == 302


def test_user_list_is_paged_and_filtered(client, web_engine) -> None:
    from web import admin

    for i in range(55):
        admin.create_user(web_engine, username=f"bulk{i:02d}", display_name=f"批量{i}", unit="PA02",
                          roles=["综合受理板块"], actor="test")
    login(client, "admin")
    first = html(client.get("/admin/users?unit=PA02"))
    assert "共 56 个用户" in first and "第 1 / 2 页" in first  # pa2_accept and the 55
    assert first.count('data-user="') == 50
    second = html(client.get("/admin/users?unit=PA02&page=2"))
    assert second.count('data-user="') == 6
    assert re.findall(r'data-user="([^"]+)"', html(client.get("/admin/users?q=%E6%89%B9%E9%87%8F5")))[:1] == ["bulk05"]
    assert 'data-user="admin"' in html(client.get("/admin/users?role=管理员"))
    assert "共 0 个用户" in html(client.get("/admin/users?q=%25"))  # LIKE wildcards are matched literally
    assert client.get("/admin/users?status=maybe").status_code == 400
    assert client.get("/admin/users?page=-3").status_code == 200


# --- units and liaisons -----------------------------------------------------------------------------------------
@pytest.mark.req("FH-9")
def test_edit_a_units_liaison_and_phone(client, web_engine) -> None:
    from handlers import reference

    login(client, "admin")
    page = html(client.get("/admin/units?region=fenghua"))
    assert 'data-unit="FH-KJJ"' in page and "区科技局负责人" in page  # the seat by its role title, not a name
    response = post(client, "/admin/units/FH-KJJ", {"name": "区科技局", "phone": "0574-88001111", "address": "",
                                                     "liaison_name": "办公室联络员", "liaison_phone": "13905740001"},
                    follow=True)
    assert "已保存 FH-KJJ" in html(response)
    with web_engine.session() as session:
        unit = session.scalar(select(OrgUnit).where(OrgUnit.code == "FH-KJJ"))
        assert (unit.liaison_name, unit.liaison_phone, unit.phone) == ("办公室联络员", "13905740001", "0574-88001111")
        assert unit.edited == "phone"
        reference.load_reference(session)  # qifu init keeps what the administrator set
    with web_engine.session() as session:
        unit = session.scalar(select(OrgUnit).where(OrgUnit.code == "FH-KJJ"))
        assert (unit.liaison_name, unit.phone) == ("办公室联络员", "0574-88001111")
    [entry] = log_rows(web_engine, "unit_updated")
    assert "联络员 — → 办公室联络员" in entry.summary and entry.target == "FH-KJJ"
    assert "办公室联络员" in html(client.get("/admin/units?q=办公室"))


@pytest.mark.parametrize("data, message", [
    ({"name": ""}, "请填写单位名称"),
    ({"name": "长" * 101}, "单位名称最长 100 个字"),
    ({"name": "  "}, "单位名称不能为空"),
    ({"liaison_name": "长" * 51}, "联络员最长 50 个字"),
    ({"liaison_phone": "12"}, "联络员电话格式不正确"),
    ({"phone": "call me"}, "单位电话格式不正确"),
    ({"liaison_name": "张\x00三"}, "控制字符"),
    ({"address": "址" * 301}, "单位地址最长 300 个字"),
])
def test_bad_unit_input_is_refused_and_changes_nothing(client, web_engine, data, message) -> None:
    login(client, "admin")
    before = snapshot(web_engine)
    form = {"name": "区经信局", "phone": "", "address": "", "liaison_name": "联络员", "liaison_phone": "", **data}
    response = post(client, "/admin/units/FH-JXJ", form)
    assert response.status_code == 400 and message in html(response), error_text(html(response))
    assert snapshot(web_engine) == before


def test_unknown_unit_codes_are_404(client) -> None:
    login(client, "admin")
    assert client.get("/admin/units/NO-SUCH").status_code == 404
    assert client.get("/admin/units/" + "X" * 41).status_code == 404
    assert client.get("/admin/units/..%2F..%2Fetc").status_code == 404
    assert client.get("/admin/units?region=mars").status_code == 400


# --- API clients ------------------------------------------------------------------------------------------------
def test_create_an_api_client_shows_its_token_once_and_revoke_stops_it(client, web_engine) -> None:
    from web.views.api import hash_token

    login(client, "admin")
    response = post(client, "/admin/api-clients", {"name": "微信公众号后台", "channels": ["wechat_account"],
                                                   "process_key": "fenghua_one_place"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    token = re.search(r'id="api-token"[^>]*>([^<]+)<', html(response)).group(1)
    with web_engine.session() as session:
        row = session.scalar(select(ApiClient).where(ApiClient.name == "微信公众号后台"))
        assert row.token_hash == hash_token(token) and row.active and row.channel_list == ["wechat_account"]
        client_id = row.id
    listing = html(client.get("/admin/api-clients"))
    assert "微信公众号后台" in listing and token not in listing
    api = client.application.test_client()
    assert api.get("/api/v1/cases/FH-NONE", headers={"Authorization": f"Bearer {token}"}).status_code == 404
    post(client, f"/admin/api-clients/{client_id}/revoke", {}, form_url="/admin/api-clients")
    assert api.get("/api/v1/cases/FH-NONE", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    again = post(client, f"/admin/api-clients/{client_id}/revoke", {}, form_url="/admin/api-clients", follow=True)
    assert "已停用" in html(again)
    assert [r.kind for r in log_rows(web_engine)] == ["api_client_created", "api_client_revoked"]
    assert all(token not in r.details_json + r.summary for r in log_rows(web_engine))
    token_form = csrf_token(client, "/admin/api-clients")
    assert client.post("/admin/api-clients/99999/revoke", data={"csrf_token": token_form}).status_code == 404


@pytest.mark.parametrize("data, message", [
    ({"name": ""}, "请填写名称"),
    ({"name": "名" * 201}, "名称最长 200 个字符"),
    ({"channels": []}, "至少指定一个渠道"),
    ({"channels": ["walk_in"]}, "不是线上渠道"),
    ({"process_key": "no_such_process"}, "未部署的流程"),
    ({"name": "bad\x1bname"}, "控制字符"),
])
def test_bad_api_client_input_is_refused_and_changes_nothing(client, web_engine, data, message) -> None:
    login(client, "admin")
    before = snapshot(web_engine)
    form = {"name": "甬企码小程序", "channels": ["yongqima"], "process_key": "fenghua_one_place", **data}
    response = post(client, "/admin/api-clients", form)
    assert response.status_code == 400 and message in html(response), error_text(html(response))
    assert snapshot(web_engine) == before


def test_a_duplicate_api_client_name_is_refused(client, web_engine) -> None:
    login(client, "admin")
    post(client, "/admin/api-clients", {"name": "PC平台", "channels": ["pc_platform"], "process_key": "fenghua_one_place"})
    before = snapshot(web_engine)
    again = post(client, "/admin/api-clients", {"name": "PC平台", "channels": ["pc_platform"],
                                                "process_key": "fenghua_one_place"})
    assert again.status_code == 400 and "客户端已存在" in html(again)
    assert snapshot(web_engine) == before


# --- the admin log ----------------------------------------------------------------------------------------------
def test_the_admin_log_is_paged_and_filtered_by_administrator_and_kind(client, web_engine, clock) -> None:
    from web import admin

    for i in range(52):
        clock.advance(seconds=1)
        admin.edit_unit(web_engine, "PA01", actor="admin" if i % 2 else "cli:root", liaison_name=f"联络员{i}")
    admin.create_user(web_engine, username="logged_user", display_name="日志", unit="PA01", roles=["督办"],
                      actor="cli:root")
    login(client, "admin")
    page = html(client.get("/admin/log"))
    assert "共 53 条" in page and "第 1 / 2 页" in page and page.count("<tr data-kind=") == 50
    assert page.index("logged_user") < page.index("联络员51")  # newest first
    assert "共 3 条" in html(client.get("/admin/log?page=2")) or html(client.get("/admin/log?page=2")).count(
        "<tr data-kind=") == 3
    by_actor = html(client.get("/admin/log?actor=admin"))
    assert "共 26 条" in by_actor and 'data-actor="cli:root"' not in by_actor
    by_kind = html(client.get("/admin/log?kind=user_created"))
    assert "共 1 条" in by_kind and "新建用户" in by_kind
    assert "共 0 条" in html(client.get("/admin/log?actor=nobody"))
    bad = client.get("/admin/log?kind=drop_table")
    assert bad.status_code == 400 and "未知的类型" in html(bad)
