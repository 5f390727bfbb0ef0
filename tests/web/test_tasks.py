"""Completing tasks through the web: forms from the diagram, server-side validation, conflicts, CSRF, XSS."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from engine.models import Event, HumanTask, Instance

from .conftest import csrf_token, login, open_task_guid, post_form, start_case

GOOD = {"f_opinion": "同意受理，转代办", "f_days": "3", "f_simple": "y", "f_level": "hard", "f_visit_date": "2026-09-29"}


def _state(engine, business_key: str) -> tuple[int, int, str, list[str]]:
    with engine.session() as session:
        inst = session.scalar(select(Instance).where(Instance.business_key == business_key))
        tasks = list(session.scalars(select(HumanTask.spec_id).where(HumanTask.instance_id == inst.id)))
        return inst.version, inst.history_seq, inst.data_json, sorted(tasks)


@pytest.mark.req("UI-1")
def test_clerk_completes_a_task_through_the_web(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_accept")
    page = client.get(f"/tasks/{guid}").get_data(as_text=True)
    # the form is the diagram's camunda:formData: every type, labels in Chinese
    for label in ("受理意见", "预计天数", "简单问题", "难易程度", "走访日期"):
        assert label in page
    assert 'type="date"' in page and "<select" in page and 'type="checkbox"' in page

    response = post_form(client, f"/tasks/{guid}", GOOD)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/cases/{case.business_key}")
    _, _, data_json, tasks = _state(web_engine, case.business_key)
    data = json.loads(data_json)
    assert data["opinion"] == "同意受理，转代办" and data["days"] == 3 and data["simple"] is True
    assert data["level"] == "hard" and data["visit_date"] == "2026-09-29"
    assert tasks == ["handle"]
    with web_engine.session() as session:
        event = session.scalar(select(Event).where(Event.action == "task_completed"))
        assert event.actor == "pa_accept" and event.spec_id == "accept"

    # the next clerk (代办服务板块) finds the next task in the inbox and completes it
    agent = client.application.test_client()
    login(agent, "pa_agent")
    handle = open_task_guid(web_engine, case.business_key, "handle")
    assert handle in agent.get("/tasks").get_data(as_text=True)
    assert post_form(agent, f"/tasks/{handle}", {"f_answer": "已办结"}).status_code == 302
    with web_engine.session() as session:
        assert session.scalar(select(Instance.status).where(Instance.business_key == case.business_key)) == "completed"
    timeline = client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    assert "办理任务：受理登记" in timeline and "受理意见" in timeline and "同意受理，转代办" in timeline


def test_form_error_comes_back_in_chinese_with_input_kept_and_case_unchanged(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    before = _state(web_engine, case.business_key)
    login(client, "pa_accept")
    bad = {**GOOD, "f_opinion": "意见" * 30, "f_days": "四十", "f_visit_date": "2026-13-45"}
    response = post_form(client, f"/tasks/{guid}", bad)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "受理意见长度不能超过 50 个字符" in html
    assert "预计天数应为整数" in html
    assert "走访日期应为日期" in html
    assert "意见" * 30 in html and 'value="四十"' in html  # the user's input is kept
    assert _state(web_engine, case.business_key) == before


def test_missing_required_field_and_range(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    before = _state(web_engine, case.business_key)
    login(client, "pa_accept")
    response = post_form(client, f"/tasks/{guid}", {**GOOD, "f_opinion": "", "f_days": "31"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "受理意见为必填项" in html and "预计天数不能大于 30" in html
    assert _state(web_engine, case.business_key) == before


def test_engine_validates_again(web_engine):
    """The web form is a convenience; the engine refuses the same bad data on its own."""
    from engine.errors import FormValidationError

    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    with pytest.raises(FormValidationError) as info:
        web_engine.runtime.complete_task(guid, {"opinion": "x" * 51}, actor="pa_accept")
    assert "长度不能超过 50" in str(info.value)


def test_task_completed_by_someone_else_shows_a_chinese_message(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_accept")
    token = csrf_token(client, f"/tasks/{guid}")  # the clerk has the form open…
    web_engine.runtime.complete_task(guid, {"opinion": "另一位同事已办理"}, actor="pa_other")  # …someone is faster
    before = _state(web_engine, case.business_key)
    response = client.post(f"/tasks/{guid}", data={"csrf_token": token, **GOOD}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "已办结或已由他人处理" in html
    assert _state(web_engine, case.business_key) == before


def test_task_claimed_by_someone_else_cannot_be_completed(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    web_engine.tasks.claim(guid, "pa_colleague")
    login(client, "pa_accept")
    before = _state(web_engine, case.business_key)
    response = post_form(client, f"/tasks/{guid}", GOOD, form_url=f"/cases/{case.business_key}")
    assert response.status_code == 403
    assert _state(web_engine, case.business_key) == before


def test_csrf_missing_is_refused_and_case_unchanged(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_accept")
    before = _state(web_engine, case.business_key)
    response = client.post(f"/tasks/{guid}", data=GOOD)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    forged = client.post(f"/tasks/{guid}", data={**GOOD, "csrf_token": "forged"})
    assert forged.status_code == 400
    assert _state(web_engine, case.business_key) == before


def test_script_in_a_field_renders_inert(client, web_engine):
    payload = "<script>alert('x')</script>"
    case = start_case(web_engine, enterprise_name=f"某公司{payload}", title=f"标题{payload}")
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_accept")
    assert post_form(client, f"/tasks/{guid}", {**GOOD, "f_opinion": payload}).status_code == 302
    pages = [client.get("/tasks").get_data(as_text=True),
             client.get(f"/cases/{case.business_key}").get_data(as_text=True)]
    handle = open_task_guid(web_engine, case.business_key, "handle")
    agent = client.application.test_client()
    login(agent, "pa_agent")
    pages.append(agent.get(f"/tasks/{handle}").get_data(as_text=True))
    for html in pages:
        assert "<script>alert" not in html
    assert "&lt;script&gt;alert(" in pages[1]  # shown, escaped, in the case page and its timeline


def test_closed_task_url_leads_to_the_case(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    web_engine.runtime.complete_task(guid, {"opinion": "好"}, actor="pa_accept")
    login(client, "pa_accept")
    response = client.get(f"/tasks/{guid}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/cases/{case.business_key}")
    assert client.get("/tasks/00000000-0000-0000-0000-000000000000").status_code == 404
