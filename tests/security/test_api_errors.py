"""Everything under /api/ answers errors as JSON ``{"error": {"code", "message"}}`` (web/app.py), and the
intake API refuses bodies it cannot parse or store with a clear Chinese message instead of a 500
(web/views/api.py). The HTML pages keep their Chinese error pages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.intake_support import CASE_FIELDS, case_count, ensure_deployed, new_api_client


@pytest.fixture
def api(web_app, web_engine):
    ensure_deployed(web_engine, "fenghua_one_place")
    return web_app


@pytest.fixture
def token(api, web_engine) -> str:
    return new_api_client(web_engine)


def post_raw(client: Any, token: str, data: bytes | str, key: str = "k-1",
             content_type: str = "application/json") -> Any:
    return client.post("/api/v1/cases", data=data, content_type=content_type,
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def json_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["message"] and any("\u4e00" <= ch <= "\u9fff" for ch in error["message"]), error  # Chinese
    if code is not None:
        assert error["code"] == code
    return error


# --- the app's own errors under /api/ -------------------------------------------------------------------
def test_unknown_api_path_is_a_json_404(client) -> None:
    json_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    json_error(client.get("/api/"), 404, "not_found")


def test_wrong_method_is_a_json_405_with_allow(client) -> None:
    response = client.delete("/api/v1/cases")
    json_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_body_over_the_api_limit_is_a_json_413(api, client, token, web_engine) -> None:
    too_big = b'{"description": "' + b"x" * (1024 * 1024) + b'"}'
    error = json_error(post_raw(client, token, too_big), 413, "payload_too_large")
    assert "1 MiB" in error["message"]
    assert case_count(web_engine) == 0


def test_an_unexpected_failure_is_a_json_500_without_traceback(api, client, token, monkeypatch) -> None:
    from web.views import api as api_view

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals: /srv/qifu/db password=hunter2")

    api.config["PROPAGATE_EXCEPTIONS"] = False  # as in production (TESTING would re-raise)
    monkeypatch.setattr(api_view, "_find_record", broken)
    response = client.post("/api/v1/cases", json=CASE_FIELDS,
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-500"})
    json_error(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "hunter2" not in text and "RuntimeError" not in text


# --- bodies the parser or the database cannot take ------------------------------------------------------
def test_bad_json_is_a_400(api, client, token) -> None:
    json_error(post_raw(client, token, b'{"enterprise_name": '), 400, "invalid_json")
    json_error(post_raw(client, token, b"\xff\xfe{}"), 400, "invalid_json")  # not UTF-8
    json_error(post_raw(client, token, b"[1, 2]"), 400, "invalid_json")  # not an object


def test_deeply_nested_json_is_a_400_not_a_crash(api, client, token, web_engine) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    json_error(post_raw(client, token, deep), 400, "json_too_deep")
    inside = '{"description": ' + "[" * 100_000 + "]" * 100_000 + "}"
    json_error(post_raw(client, token, inside, key="k-2"), 400, "json_too_deep")
    assert case_count(web_engine) == 0


def test_a_lone_surrogate_is_refused_per_field(api, client, token, web_engine) -> None:
    body = '{"enterprise_name": "某公司", "contact_name": "王\\ud800", "contact_phone": "13805740001", ' \
           '"category": "factor_power", "description": "新建厂房需要用电增容\\udfff"}'
    error = json_error(post_raw(client, token, body), 422, "invalid_fields")
    assert "Unicode" in error["fields"]["contact_name"] and "Unicode" in error["fields"]["description"]
    assert case_count(web_engine) == 0


def test_a_lone_surrogate_in_a_field_name_is_refused(api, client, token) -> None:
    body = '{"enterprise_name\\ud800": "x", "description": "新建厂房需要用电增容"}'
    error = json_error(post_raw(client, token, body), 422, "invalid_fields")
    assert error["fields"]["enterprise_name\\ud800"] == "不支持的字段"


def test_nul_in_a_text_field_is_refused(api, client, token, web_engine) -> None:
    response = client.post("/api/v1/cases", json={**CASE_FIELDS, "title": "用电\x00增容"},
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-nul"})
    error = json_error(response, 422, "invalid_fields")
    assert "U+0000" in error["fields"]["title"] and "控制字符" in error["fields"]["title"]
    assert case_count(web_engine) == 0
    # fixed, the same key goes through: nothing was stored for the refused attempt
    fixed = client.post("/api/v1/cases", json=CASE_FIELDS,
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-nul"})
    assert fixed.status_code == 201, fixed.get_json()


def test_nul_in_a_case_key_is_a_404_on_both_databases(case_engine, tmp_path) -> None:
    """PostgreSQL refuses NUL even in a query parameter: without the check this is a 500 there."""
    from web.app import create_app

    app = create_app(engine=case_engine, config={"TESTING": True, "SECRET_KEY": "k",
                                                 "QIFU_VAR_DIR": str(tmp_path / "var")})
    token = new_api_client(case_engine)
    response = app.test_client().get("/api/v1/cases/FH-%00", headers={"Authorization": f"Bearer {token}"})
    json_error(response, 404, "not_found")


# --- the HTML side keeps its pages ----------------------------------------------------------------------
def test_html_pages_keep_their_chinese_error_pages(client) -> None:
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "未找到" in missing.get_data(as_text=True)
    wrong = client.delete("/login")
    assert wrong.status_code == 405 and wrong.mimetype == "text/html"
    assert "请求方式不支持" in wrong.get_data(as_text=True)


def test_an_unexpected_failure_on_a_page_is_a_chinese_500(web_app, client, monkeypatch) -> None:
    from web.views import public

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    web_app.config["PROPAGATE_EXCEPTIONS"] = False
    monkeypatch.setattr(public, "_case_for_token", broken)
    response = client.get("/track/some-token")
    assert response.status_code == 500 and response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "系统错误" in text and "secret internals" not in text
