"""The inbox: who sees which task, traffic lights from due dates, claiming, reassigning, filters, paging."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.models import HumanTask

from .conftest import login, open_task_guid, post_form, start_case


def _rows(html: str) -> list[tuple[str, str]]:
    """(light class, task guid) of every inbox row."""
    return re.findall(r'<tr class="row-(\w+)" data-task="([0-9a-f-]+)">', html)


def _inbox(client, query: str = "") -> str:
    response = client.get(f"/tasks{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_inbox_shows_only_tasks_of_my_groups_and_visible_cases(client, web_engine):
    mine = start_case(web_engine, unit="PA01")
    other_station = start_case(web_engine, unit="PA02")
    accept_1 = open_task_guid(web_engine, mine.business_key, "accept")
    accept_2 = open_task_guid(web_engine, other_station.business_key, "accept")

    login(client, "pa_accept")  # 综合受理板块 of PA01
    guids = [g for _, g in _rows(_inbox(client))]
    assert guids == [accept_1]

    fresh = client.application.test_client()
    login(fresh, "pa2_accept")  # same role, station PA02
    assert [g for _, g in _rows(_inbox(fresh))] == [accept_2]

    agent = client.application.test_client()
    login(agent, "pa_agent")  # PA01 but another panel: not offered the task
    assert _rows(_inbox(agent)) == []


def test_supervisor_sees_every_task_of_the_region_only_when_asking_for_all(client, web_engine):
    case = start_case(web_engine, unit="PA02")
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_super")
    assert _rows(_inbox(client)) == []  # not offered to 督办
    assert [g for _, g in _rows(_inbox(client, "?scope=all"))] == [guid]
    other_region = client.application.test_client()
    login(other_region, "fh_super")
    assert _rows(_inbox(other_region, "?scope=all")) == []  # a Fenghua supervisor does not see Pan'an cases
    clerk = client.application.test_client()
    login(clerk, "pa2_accept")
    assert "可见的全部任务" not in _inbox(clerk)


def test_traffic_light_follows_the_working_day_calendar(client, web_engine, clock):
    case = start_case(web_engine)  # 2026-09-30 10:00; due end of 2026-10-09 (two working days on)
    login(client, "pa_accept")
    html = _inbox(client)
    assert _rows(html)[0][0] == "green"
    assert "2026-10-09 23:59" in html and "剩余 2 个工作日" in html

    clock.set("2026-10-09T09:00:00")  # the due day itself
    html = _inbox(client)
    assert _rows(html)[0][0] == "yellow" and "今日到期" in html

    clock.set("2026-10-10T08:00:00")  # past due
    html = _inbox(client)
    assert _rows(html)[0][0] == "red" and "已逾期" in html
    assert case.business_key in html


def test_holidays_do_not_count_as_days_left(client, web_engine, clock):
    start_case(web_engine)  # due end of 2026-10-09; 10-01..10-07 are National Day holidays
    login(client, "pa_accept")
    clock.set("2026-10-07T12:00:00")  # two calendar days before, two working days left (10-08, 10-09)
    assert [light for light, _ in _rows(_inbox(client))] == ["green"]
    clock.set("2026-10-08T12:00:00")  # one working day left
    html = _inbox(client)
    assert [light for light, _ in _rows(html)] == ["yellow"] and "剩余 1 个工作日" in html


def test_provisional_deadline_is_marked(client, web_engine, clock):
    clock.set("2027-03-01T10:00:00")  # no official schedule for 2027 in the seeded calendar
    start_case(web_engine)
    login(client, "pa_accept")
    html = _inbox(client)
    assert "暂定" in html


def test_claim_then_unclaim(client, other_client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_accept")
    response = post_form(client, f"/tasks/{guid}/claim", {}, form_url=f"/tasks/{guid}")
    assert response.status_code == 302
    with web_engine.session() as session:
        assert session.scalar(select(HumanTask.assignee).where(HumanTask.task_guid == guid)) == "pa_accept"
    assert [g for _, g in _rows(_inbox(client, "?status=mine"))] == [guid]
    post_form(client, f"/tasks/{guid}/unclaim", {}, form_url=f"/tasks/{guid}")
    with web_engine.session() as session:
        assert session.scalar(select(HumanTask.assignee).where(HumanTask.task_guid == guid)) is None


def test_claim_refused_for_a_user_outside_the_groups(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_agent")  # same unit, other panel
    response = post_form(client, f"/tasks/{guid}/claim", {}, form_url=f"/cases/{case.business_key}")
    assert response.status_code == 403
    with web_engine.session() as session:
        assert session.scalar(select(HumanTask.assignee).where(HumanTask.task_guid == guid)) is None


def test_supervisor_reassigns_clerk_cannot(client, other_client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(other_client, "pa_accept")
    refused = post_form(other_client, f"/tasks/{guid}/reassign", {"username": "pa_accept"}, form_url=f"/tasks/{guid}")
    assert refused.status_code == 403

    login(client, "pa_super")
    page = client.get(f"/tasks/{guid}").get_data(as_text=True)
    assert "改派" in page and "pa_accept" in page
    post_form(client, f"/tasks/{guid}/reassign", {"username": "pa_accept"}, form_url=f"/tasks/{guid}")
    with web_engine.session() as session:
        assert session.scalar(select(HumanTask.assignee).where(HumanTask.task_guid == guid)) == "pa_accept"
    # a user of another station may not receive it (cannot see the case)
    response = post_form(client, f"/tasks/{guid}/reassign", {"username": "pa2_accept"}, form_url=f"/tasks/{guid}",
                         follow_redirects=True)
    assert "改派失败" in response.get_data(as_text=True)
    with web_engine.session() as session:
        assert session.scalar(select(HumanTask.assignee).where(HumanTask.task_guid == guid)) == "pa_accept"


def test_filters_and_paging(client, web_app, web_engine):
    visit = start_case(web_engine, channel="visit")
    walk_in = [start_case(web_engine, channel="walk_in", category="policy_talent") for _ in range(3)]
    login(client, "pa_accept")
    by_channel = _rows(_inbox(client, "?channel=visit"))
    assert [g for _, g in by_channel] == [open_task_guid(web_engine, visit.business_key, "accept")]
    by_category = _rows(_inbox(client, "?category=policy_talent"))
    assert len(by_category) == 3
    assert _rows(_inbox(client, "?process=demo_general_request")) == []
    assert len(_rows(_inbox(client, "?unit=PA01"))) == 4 and _rows(_inbox(client, "?unit=PA02")) == []

    web_app.config["INBOX_PAGE_SIZE"] = 3
    first, second = _inbox(client), _inbox(client, "?page=2")
    assert len(_rows(first)) == 3 and len(_rows(second)) == 1
    assert "第 1 / 2 页" in first and "下一页" in first
    assert set(g for _, g in _rows(first)).isdisjoint(g for _, g in _rows(second))
    assert walk_in
