"""The public pages: submit without an account (rate-limited in the database, CSRF on), the private tracking
link, and the enterprise's satisfaction rating that the diagram acts on (FH-2, FH-7, FH-8)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.web.conftest import csrf_token
from tests.web.intake_support import (
    CASE_FIELDS,
    case_count,
    ensure_deployed,
    enterprise_case,
    fenghua_to_rating,
    open_tasks,
)

LINK = re.compile(r'id="tracking-link" href="[^"]*/track/([^"]+)"')


@pytest.fixture
def site(web_app, web_engine):
    ensure_deployed(web_engine, "fenghua_one_place")
    return web_app


def submit(client: Any, fields: dict[str, str] | None = None, **kwargs: Any) -> Any:
    token = csrf_token(client, "/submit")
    return client.post("/submit", data={"csrf_token": token, **(fields or CASE_FIELDS)}, **kwargs)


def submit_and_track(client: Any, fields: dict[str, str] | None = None) -> tuple[str, str]:
    """Submit through the public form; returns (business key, tracking token) as the enterprise sees them."""
    response = submit(client, fields)
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    business_key = re.search(r'id="business-key">([^<]+)<', page).group(1)
    return business_key, LINK.search(page).group(1)


@pytest.mark.req("FH-2")
def test_an_enterprise_submits_without_logging_in_and_gets_a_private_link(site, client, web_engine) -> None:
    form = client.get("/submit")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert 'name="csrf_token"' in html and "要素保障" in html  # categories from the reference data (FH-1)
    response = submit(client)
    assert response.status_code == 303 and response.headers["Location"].endswith("/submit/done")
    done = client.get("/submit/done")
    page = done.get_data(as_text=True)
    assert done.headers["Cache-Control"] == "no-store"
    business_key = re.search(r'id="business-key">([^<]+)<', page).group(1)
    token = LINK.search(page).group(1)
    assert business_key.startswith("FH-")
    case = enterprise_case(web_engine, business_key)
    assert case.channel == "web_form" and case.enterprise_name == CASE_FIELDS["enterprise_name"]
    assert case.tracking_hash and token not in case.tracking_hash  # only the hash is stored
    # the receipt is shown once: the token lives only in the visitor's session until then
    again = client.get("/submit/done")
    assert again.status_code == 302 and token not in again.get_data(as_text=True)
    track = client.get(f"/track/{token}")
    assert track.status_code == 200 and business_key in track.get_data(as_text=True)


def test_the_public_form_requires_a_csrf_token(site, client, web_engine) -> None:
    response = client.post("/submit", data=CASE_FIELDS)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert case_count(web_engine) == 0


def test_form_errors_are_shown_in_chinese_and_nothing_is_saved(site, client, web_engine) -> None:
    response = submit(client, {**CASE_FIELDS, "enterprise_name": "", "category": "nonsense"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "请填写企业名称" in html and "不是有效的选择" in html
    assert "Not a valid choice" not in html and "This field is required" not in html
    assert 'value="王经理"' in html  # what the enterprise typed is kept
    # content checks of intake itself (phone format) come back next to the field too
    response = submit(client, {**CASE_FIELDS, "contact_phone": "12345"})
    assert response.status_code == 422
    assert "联系电话格式不正确" in response.get_data(as_text=True)
    assert case_count(web_engine) == 0


def test_rate_limit_is_per_address_in_the_database(site, client, web_engine) -> None:
    from web.app import create_app
    from web.intake_models import RateLimitHit

    site.config["QIFU_PUBLIC_RATE_LIMIT"] = 2
    assert submit(client).status_code == 303
    assert submit(client).status_code == 303
    refused = submit(client)
    assert refused.status_code == 429
    assert "提交过于频繁" in refused.get_data(as_text=True)
    assert case_count(web_engine) == 2
    with web_engine.session() as session:
        assert session.scalar(select(func.count(RateLimitHit.id))) == 2
        assert "127.0.0.1" not in "".join(session.scalars(select(RateLimitHit.bucket)))  # digest, not the IP
    # another process (a second app over the same database) enforces the same limit ...
    other = create_app(engine=web_engine, config={"TESTING": True, "SECRET_KEY": "another-process",
                                                  "QIFU_PUBLIC_RATE_LIMIT": 2})
    assert submit(other.test_client()).status_code == 429
    # ... and another address is not affected
    assert submit(client, environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 303
    # an hour later the address may submit again
    web_engine.clock.advance(hours=1, seconds=1)
    assert submit(client).status_code == 303
    assert case_count(web_engine) == 4


def test_script_in_a_submission_renders_inert(site, client, web_engine) -> None:
    evil = "<script>alert('x')</script>"
    _key, token = submit_and_track(client, {**CASE_FIELDS, "title": f"标题{evil}",
                                            "description": f"描述{evil}内容足够长"})
    page = client.get(f"/track/{token}").get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(" in page
    assert "script-src 'self'" in client.get(f"/track/{token}").headers["Content-Security-Policy"]


def test_tracking_page_shows_only_its_own_case_and_no_internal_data(site, client, web_engine) -> None:
    key_a, token_a = submit_and_track(client)
    other = {**CASE_FIELDS, "enterprise_name": "另一家企业有限公司", "title": "另一家的融资问题",
             "contact_phone": "13905740002", "category": "factor_finance"}
    key_b, token_b = submit_and_track(client, other)
    fenghua_to_rating(web_engine, key_a)  # A moves on: contact, transfer, unit's answer, revisit
    response = client.get(f"/track/{token_a}")
    page = response.get_data(as_text=True)
    assert key_a in page and "承办单位办理：已完成" in page and "已交承办单位办理" in page
    assert "已协调供电公司" in page  # the answer addressed to the enterprise is shown
    for leak in (key_b, token_b, "另一家", "13905740002", CASE_FIELDS["contact_phone"],
                 "fh_staff", "fh_unit", "已电话联系企业",            # actors and internal notes
                 "请区经信局协调供电部门办理增容", "企业确认已收到答复"):  # the internal opinion and revisit note
        assert leak not in page, leak
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert key_b in client.get(f"/track/{token_b}").get_data(as_text=True)


@pytest.mark.parametrize("token", ["not-a-token", "x" * 300, "%3Cscript%3E"])
def test_an_invalid_link_is_a_chinese_404(site, client, token) -> None:
    submit_and_track(client)
    response = client.get(f"/track/{token}")
    assert response.status_code == 404
    assert "未找到该诉求" in response.get_data(as_text=True)


@pytest.mark.req("FH-7", "FH-8")
def test_a_dissatisfied_rating_sends_the_case_back_and_a_satisfied_one_closes_it(site, client, web_engine) -> None:
    from handlers.models import Rating

    key, token = submit_and_track(client)
    page = client.get(f"/track/{token}").get_data(as_text=True)
    assert 'name="satisfaction"' not in page  # nothing to rate before the answer
    fenghua_to_rating(web_engine, key)
    page = client.get(f"/track/{token}").get_data(as_text=True)
    assert 'name="satisfaction"' in page and "不满意" in page
    assert [t.spec_id for t in open_tasks(web_engine, key)] == ["Task_EnterpriseRating"]

    # an invalid rating is refused in Chinese and changes nothing
    bad = client.post(f"/track/{token}", data={"csrf_token": csrf_token(client, f"/track/{token}"),
                                               "satisfaction": "非常满意"})
    assert bad.status_code == 422 and "不是有效的选择" in bad.get_data(as_text=True)
    assert [t.spec_id for t in open_tasks(web_engine, key)] == ["Task_EnterpriseRating"]

    form_token = csrf_token(client, f"/track/{token}")
    rated = client.post(f"/track/{token}", data={"csrf_token": form_token,
                                                 "satisfaction": "不满意", "rating_comment": "增容仍未实施"})
    assert rated.status_code == 303
    # FH-8: back into handling — the centre contacts the enterprise again; the case is carried (挂账)
    assert [t.spec_id for t in open_tasks(web_engine, key)] == ["Task_Contact"]
    case = enterprise_case(web_engine, key)
    assert case.ledger_status == "carried"  # the rating itself is kept as a Rating row (the next one is new)
    with web_engine.session() as session:
        ratings = [(r.value, r.comment, r.source) for r in session.scalars(select(Rating).order_by(Rating.id))]
    assert ratings == [("不满意", "增容仍未实施", "enterprise")]
    page = client.get(f"/track/{token}").get_data(as_text=True)
    assert "感谢您的评价" in page and "重新办理" in page and 'name="satisfaction"' not in page
    # a second post of the same (now closed) rating form changes nothing
    again = client.post(f"/track/{token}", data={"csrf_token": form_token, "satisfaction": "满意"})
    assert again.status_code == 303
    assert [t.spec_id for t in open_tasks(web_engine, key)] == ["Task_Contact"]

    fenghua_to_rating(web_engine, key)  # handled again
    client.post(f"/track/{token}", data={"csrf_token": csrf_token(client, f"/track/{token}"),
                                         "satisfaction": "满意"})
    case = enterprise_case(web_engine, key)
    assert case.ledger_status == "closed" and case.satisfaction == "满意"
    assert open_tasks(web_engine, key) == []
    page = client.get(f"/track/{token}").get_data(as_text=True)
    assert "已办结" in page


def test_the_rating_form_requires_a_csrf_token(site, client, web_engine) -> None:
    key, token = submit_and_track(client)
    fenghua_to_rating(web_engine, key)
    response = client.post(f"/track/{token}", data={"satisfaction": "不满意"})
    assert response.status_code == 400
    assert [t.spec_id for t in open_tasks(web_engine, key)] == ["Task_EnterpriseRating"]


@pytest.mark.req("PA-1")
def test_a_pan_an_tracking_page_names_its_station_not_the_fenghua_hotline(client, web_engine) -> None:
    """#14 item 11: the tracking page gives the number of the unit that received the case (PA-1 registry)."""
    from tests.web.conftest import start_case

    pan_an = start_case(web_engine, unit="PA01")
    page = client.get(f"/track/{pan_an.tracking_token}").get_data(as_text=True)
    assert "88888718" not in page
    assert "安文街道企业服务站（窗口）" in page and "0579-84661160" in page
    wrong = client.get("/track/not-a-token").get_data(as_text=True)
    assert "88888718" not in wrong  # a wrong link does not know the region: no region's hotline either


def test_a_fenghua_tracking_page_keeps_the_centre_hotline(site, client, web_engine) -> None:
    _key, token = submit_and_track(client)
    assert "0574-88888718" in client.get(f"/track/{token}").get_data(as_text=True)
