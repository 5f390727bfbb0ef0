"""The clerk's intake form (受理登记): one window for every channel (PA-2, FH-2), reference data in the
selects, Chinese errors with nothing saved, CSRF, and only the intake roles may use it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.web.conftest import csrf_token, login
from tests.web.intake_support import CASE_FIELDS, case_count, ensure_deployed, enterprise_case, open_tasks


@pytest.fixture
def desk(web_app, web_engine):
    ensure_deployed(web_engine, "fenghua_one_place")
    ensure_deployed(web_engine, "pan_an_station")
    return web_app


def post_intake(client: Any, data: dict[str, str]) -> Any:
    return client.post("/intake", data={"csrf_token": csrf_token(client, "/intake"), **data})


def options(html: str, select: str) -> list[str]:
    block = re.search(rf'<select[^>]*name="{select}"[^>]*>(.*?)</select>', html, re.S).group(1)
    return [v for v in re.findall(r'<option[^>]*value="([^"]*)"', block) if v]


@pytest.mark.req("FH-2")
def test_fenghua_centre_registers_a_hotline_call(desk, client, web_engine) -> None:
    login(client, "fh_staff")
    page = client.get("/intake")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert options(html, "unit") == ["FH-CENTRE"]
    channels = options(html, "channel")
    # FH-2: every offline and online channel of Fenghua, none of Pan'an's
    assert {"window_8718", "resident_commissioner", "special_team", "forum", "association", "hotline",
            "pc_platform", "wechat_account", "yongqima", "wechat_group", "qiyema"} <= set(channels)
    assert "visit" not in channels and "walk_in" not in channels
    assert "factor_power" in options(html, "category")

    response = post_intake(client, {**CASE_FIELDS, "unit": "FH-CENTRE", "channel": "hotline"})
    assert response.status_code == 303
    business_key = response.headers["Location"].rsplit("/", 1)[1]
    assert response.headers["Location"].endswith(f"/cases/{business_key}")
    case = enterprise_case(web_engine, business_key)
    assert (case.region, case.unit, case.channel, case.category) == ("fenghua", "FH-CENTRE", "hotline",
                                                                      "factor_power")
    assert [t.spec_id for t in open_tasks(web_engine, business_key)] == ["Task_Contact"]
    case_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert business_key in case_page
    link = re.search(r"/track/([A-Za-z0-9_-]+)", case_page)  # the enterprise's link, shown to the clerk once
    assert link, "the tracking link is shown after intake"
    assert re.search(r"/track/", client.get(response.headers["Location"]).get_data(as_text=True)) is None
    assert client.get(f"/track/{link.group(1)}").status_code == 200


@pytest.mark.req("PA-2")
def test_pan_an_station_accepts_a_problem_from_an_enterprise_visit(desk, client, web_engine) -> None:
    login(client, "pa_accept")
    html = client.get("/intake").get_data(as_text=True)
    units = options(html, "unit")
    assert units == ["PA01"]  # a station's clerk registers for their own station only (#10)
    assert re.search(r'<option[^>]*selected[^>]*value="PA01"|<option[^>]*value="PA01"[^>]*selected', html)
    assert options(html, "channel") == ["visit", "walk_in"]
    response = post_intake(client, {**CASE_FIELDS, "unit": "PA01", "channel": "visit", "category": "",
                                    "enterprise_name": "磐安县某某药业有限公司"})
    assert response.status_code == 303
    business_key = response.headers["Location"].rsplit("/", 1)[1]
    assert business_key.startswith("PA-")
    case = enterprise_case(web_engine, business_key)
    assert (case.region, case.unit, case.channel) == ("pan_an", "PA01", "visit")


def test_a_clerk_cannot_register_for_another_region(desk, client, web_engine) -> None:
    login(client, "pa_accept")
    response = post_intake(client, {**CASE_FIELDS, "unit": "FH-CENTRE", "channel": "hotline"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "不是有效的选择" in html and "Not a valid choice" not in html
    assert case_count(web_engine) == 0


def test_a_station_clerk_cannot_register_for_another_station(desk, client, web_engine) -> None:
    """A case registered for PA02 by PA01's clerk would be one the clerk then cannot open (#10)."""
    login(client, "pa_accept")  # 综合受理板块 of PA01
    response = post_intake(client, {**CASE_FIELDS, "unit": "PA02", "channel": "visit", "category": ""})
    assert response.status_code == 422
    assert "不是有效的选择" in response.get_data(as_text=True)
    assert case_count(web_engine) == 0


def test_errors_are_chinese_next_to_the_field_and_nothing_is_saved(desk, client, web_engine) -> None:
    login(client, "fh_staff")
    response = post_intake(client, {**CASE_FIELDS, "unit": "FH-CENTRE", "channel": "", "enterprise_name": ""})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "请填写企业名称" in html and "请选择受理渠道" in html
    assert 'aria-invalid="true"' in html
    # intake's own checks (phone, ID number checksum) come back the same way
    response = post_intake(client, {**CASE_FIELDS, "unit": "FH-CENTRE", "channel": "hotline",
                                    "contact_id_number": "330283199001011234"})
    assert response.status_code == 422
    assert "身份证号不正确" in response.get_data(as_text=True)
    assert 'value="王经理"' in response.get_data(as_text=True)
    assert case_count(web_engine) == 0


def test_the_intake_form_requires_a_csrf_token(desk, client, web_engine) -> None:
    login(client, "fh_staff")
    response = client.post("/intake", data={**CASE_FIELDS, "unit": "FH-CENTRE", "channel": "hotline"})
    assert response.status_code == 400
    assert case_count(web_engine) == 0


@pytest.mark.parametrize("username", ["fh_unit", "pa_agent", "auditor", "fh_team"])
def test_only_intake_roles_may_register(desk, client, web_engine, username) -> None:
    login(client, username)
    assert client.get("/intake").status_code == 403


def test_intake_needs_a_login(desk, client) -> None:
    response = client.get("/intake")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_nav_offers_intake_only_to_intake_roles(client, other_client) -> None:
    from tests.web.conftest import login

    assert "企业在线提交诉求" in client.get("/login").get_data(as_text=True)
    login(client, "fh_unit")
    assert "受理登记" not in client.get("/").get_data(as_text=True)
    login(other_client, "fh_staff")
    page = other_client.get("/").get_data(as_text=True)
    assert "受理登记" in page and 'href="/intake"' in page
