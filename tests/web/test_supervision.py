"""The supervisor's pages (web/views/supervision.py): 督办台账 with its .xlsx export (FH-8, PA-7), 跟踪督办
(PA-9) and 月度简报 with its .xlsx download (FH-10).

Cases start through ``handlers.intake.submit_case`` on the deployed seed diagrams and move only by completing
tasks and firing due timers with the test clock (2026-09-30 10:00 Shanghai, the last working day before
National Day; the working days after it are 10-08, 10-09, the make-up Saturday 10-10, 10-12 …). The pages
are read the way a browser gets them, logged in as the demo users of ``web/demo/users.py``.
"""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select

from engine.clock import FixedClock
from engine.models import HumanTask, Instance
from engine.process_engine import ProcessEngine
from handlers.intake import submit_case
from handlers.models import EnterpriseCase
from tests.web.conftest import login
from tests.xlsx import table

PA_FIELDS = {"unit": "PA01", "channel": "visit", "enterprise_name": "磐安县安文药业有限公司", "contact_name": "陈立",
             "contact_phone": "13857900001", "title": "厂房扩建用地手续",
             "description": "企业走访时反映：厂房扩建需办理用地手续，不清楚流程。"}
FH_FIELDS = {"enterprise_name": "宁波奉化示例机械有限公司", "contact_name": "王经理", "contact_phone": "13805741234",
             "channel": "window_8718", "category": "factor_land", "title": "新厂房用地指标",
             "description": "企业扩产需要新增工业用地，希望了解用地指标和办理流程。"}
URLS = ("/supervision/ledger", "/supervision/ledger.xlsx", "/supervision/tracking",
        "/supervision/briefing?month=2026-09", "/supervision/briefing.xlsx?month=2026-09")


# --- driving cases ---------------------------------------------------------------------------------------
def complete(engine: ProcessEngine, key: str, spec_id: str, data: dict[str, Any], actor: str = "clerk") -> None:
    with engine.session() as s:
        guid = s.scalar(select(HumanTask.task_guid).join(Instance, Instance.id == HumanTask.instance_id)
                        .where(Instance.business_key == key, HumanTask.spec_id == spec_id))
    assert guid, f"{spec_id} is not open in {key}"
    engine.runtime.complete_task(guid, data, actor=actor)


def is_open(engine: ProcessEngine, key: str, spec_id: str) -> bool:
    with engine.session() as s:
        return s.scalar(select(HumanTask.id).join(Instance, Instance.id == HumanTask.instance_id)
                        .where(Instance.business_key == key, HumanTask.spec_id == spec_id)) is not None


def ledger_status(engine: ProcessEngine, key: str) -> tuple[str, bool]:
    with engine.session() as s:
        row = s.scalar(select(EnterpriseCase).where(EnterpriseCase.business_key == key))
        return row.ledger_status, bool(row.overdue)


def pan_an(engine: ProcessEngine, **over: str) -> str:
    return submit_case(engine, "pan_an_station", {**PA_FIELDS, **over}).business_key


def fenghua(engine: ProcessEngine, **over: str) -> str:
    return submit_case(engine, "fenghua_one_place", {**FH_FIELDS, **over}).business_key


def pa_complex(engine: ProcessEngine, key: str) -> None:
    complete(engine, key, "Task_Classify", {"classification": "complex", "scope": "area", "notes": "研判"})
    complete(engine, key, "Task_AgencyAssess", {"joint_panels": "经济发展服务板块", "opinion": "联动站内板块"})


@pytest.fixture
def world(web_engine: ProcessEngine, clock: FixedClock) -> dict[str, str]:
    """Pan'an: A (PA01) resolved by the agency on 10-09 and closed; B (PA01) past its 3 working days → 挂账;
    C (PA02) still at classification; D (PA01) received in October. Fenghua: Q answered on the spot and rated
    满意 → 销账; T transferred to 区住建局 (FH-ZJJ), not answered by 10-09 → 催办, 挂账."""
    keys = {"A": pan_an(web_engine), "B": pan_an(web_engine), "C": pan_an(web_engine, unit="PA02"),
            "Q": fenghua(web_engine, channel="hotline"), "T": fenghua(web_engine)}
    pa_complex(web_engine, keys["A"])
    pa_complex(web_engine, keys["B"])
    complete(web_engine, keys["Q"], "Task_Contact", {"contact_record": "已电话联系企业。", "route": "quick",
                                                     "opinion": "情况清楚，现场答复。"})
    complete(web_engine, keys["Q"], "Task_QuickReply", {"result": "solved", "reply_mode": "online",
                                                        "answer": "用地指标可向自然资源规划分局申请。"})
    complete(web_engine, keys["Q"], "Task_Revisit", {"revisit_mode": "phone", "revisit_note": "企业已收到答复。"})
    complete(web_engine, keys["Q"], "Task_EnterpriseRating", {"satisfaction": "满意", "rating_comment": "好"},
             actor="企业")
    complete(web_engine, keys["T"], "Task_Contact", {"contact_record": "已联系企业。", "route": "transfer",
                                                     "opinion": "请区住建局答复。", "handling_unit": "FH-ZJJ"})
    clock.set("2026-10-09T10:00:00")
    complete(web_engine, keys["A"], "Task_AgencyHandle", {"outcome": "resolved", "answer": "已指导办理用地手续。"})
    complete(web_engine, keys["A"], "Task_Feedback", {"feedback": "您的用地手续已指导办理完毕。"})
    if is_open(web_engine, keys["A"], "Task_Revisit"):  # drawn for the 20 % revisit
        complete(web_engine, keys["A"], "Task_Revisit", {"satisfaction": "满意", "revisit_notes": "电话回访"})
    clock.set("2026-10-11T08:00:00")
    assert web_engine.management.run_due_timers() == 2  # B's agency limit (10-10) and T's unit limit (10-09)
    clock.set("2026-10-12T10:00:00")
    keys["D"] = pan_an(web_engine, title="用电增容")
    expected = {"A": ("closed", False), "B": ("carried", True), "C": ("handling", False), "D": ("handling", False),
                "Q": ("closed", False), "T": ("carried", True)}
    assert {name: ledger_status(web_engine, key) for name, key in keys.items()} == expected
    return keys


# --- reading pages ---------------------------------------------------------------------------------------
def page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def section(html: str, table_id: str) -> str:
    match = re.search(rf'<table class="list" id="{table_id}">(.*?)</table>', html, re.S)
    assert match, table_id
    return match.group(1)


def case_rows(html: str, table_id: str = "ledger") -> dict[str, dict[str, str]]:
    """business key → data attributes and cell texts of each row of a case table."""
    out = {}
    for attrs, body in re.findall(r"<tr (data-case=[^>]*)>(.*?)</tr>", section(html, table_id), re.S):
        data = dict(re.findall(r'data-(\w+)="([^"]*)"', attrs))
        cells = [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td>(.*?)</td>", body, re.S)]
        out[data["case"]] = {**data, "cells": [" ".join(c) for c in cells]}
    return out


def counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'<td data-count="(\w+)">(\d+)</td>', section(html, "ledger-counts"))}


# --- access ---------------------------------------------------------------------------------------------
def test_only_supervising_roles_may_open_the_pages(client: FlaskClient, other_client: FlaskClient) -> None:
    for url in URLS:
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    login(client, "pa_accept")  # 综合受理板块: a clerk
    for url in URLS:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "无权访问" in response.get_data(as_text=True)
    assert "督办台账" not in page(client, "/tasks")  # no nav link for a clerk
    login(other_client, "fh_unit")  # 承办单位
    assert other_client.get("/supervision/ledger").status_code == 403
    for username in ("pa_super", "pa_office", "fh_team", "fh_super", "admin"):
        other = client.application.test_client()
        login(other, username)
        html = page(other, "/supervision/ledger")
        assert "督办台账" in page(other, "/tasks"), username  # the nav link
        assert "<h1>督办台账</h1>" in html


# --- 台账 -------------------------------------------------------------------------------------------------
@pytest.mark.req("PA-7")
def test_pan_an_ledger_lists_every_case_with_status_deadline_and_overdue(client: FlaskClient,
                                                                        world: dict[str, str]) -> None:
    login(client, "pa_super")
    html = page(client, "/supervision/ledger")
    rows = case_rows(html)
    assert set(rows) == {world[k] for k in "ABCD"}  # no Fenghua case
    assert f'href="/cases/{world["B"]}"' in html
    statuses = {name: (rows[world[name]]["status"], rows[world[name]]["overdue"]) for name in "ABCD"}
    assert statuses == {"A": ("closed", "no"), "B": ("carried", "yes"), "C": ("handling", "no"),
                        "D": ("handling", "no")}
    b = rows[world["B"]]["cells"]
    # unit, category (none given), channel, received, deadline, status, overdue flag, stage
    assert (b[1], b[3], b[4]) == ("安文街道企业服务站（窗口）", "", "企业走访")  # names, not codes
    assert (b[5], b[6], b[7], b[8], b[9]) == ("2026-09-30 10:00", "2026-10-10 23:59", "挂账", "逾期", "代办办理、跟踪督办")
    assert rows[world["A"]]["cells"][6] == "—" and rows[world["A"]]["cells"][7] == "销账"
    assert rows[world["C"]]["cells"][7] == "办理中" and rows[world["C"]]["cells"][9] == "受理与分类"
    assert counts(html) == {"total": 4, "handling": 2, "answered": 0, "closed": 1, "carried": 1, "overdue": 1}
    # filters: status, unit (a station), month of receipt
    assert set(case_rows(page(client, "/supervision/ledger?status=carried"))) == {world["B"]}
    assert set(case_rows(page(client, "/supervision/ledger?status=closed"))) == {world["A"]}
    assert set(case_rows(page(client, "/supervision/ledger?unit=PA02"))) == {world["C"]}
    assert set(case_rows(page(client, "/supervision/ledger?month=2026-10"))) == {world["D"]}
    assert set(case_rows(page(client, "/supervision/ledger?month=2026-09&unit=PA01"))) == {world["A"], world["B"]}
    bad = client.get("/supervision/ledger?month=2026-9x")
    assert bad.status_code == 400 and "月份格式应为 YYYY-MM" in bad.get_data(as_text=True)


@pytest.mark.req("FH-8")
def test_fenghua_supervisor_sees_closed_and_carried_cases_of_fenghua_only(client: FlaskClient,
                                                                         world: dict[str, str]) -> None:
    login(client, "fh_super")
    html = page(client, "/supervision/ledger")
    rows = case_rows(html)
    assert set(rows) == {world["Q"], world["T"]}
    assert not any(world[k] in html for k in "ABCD")
    assert (rows[world["Q"]]["status"], rows[world["T"]]["status"]) == ("closed", "carried")
    t = rows[world["T"]]["cells"]
    assert (t[1], t[3], t[4]) == ("奉化区企业“最多跑一地”综合服务中心", "土地", "奉化8718平台服务窗口")  # names
    assert rows[world["Q"]]["cells"][4] == "24小时服务热线"
    assert (t[6], t[7], t[8], t[9]) == ("2026-10-09 23:59", "挂账", "逾期", "承办单位办理")
    assert counts(html) == {"total": 2, "handling": 0, "answered": 0, "closed": 1, "carried": 1, "overdue": 1}
    # the unit filter finds a case also by the unit it was transferred to
    assert set(case_rows(page(client, "/supervision/ledger?unit=FH-ZJJ"))) == {world["T"]}
    # and the case page behind the link opens for the supervisor, a Pan'an case does not
    assert client.get(f"/cases/{world['T']}").status_code == 200
    assert client.get(f"/cases/{world['A']}").status_code == 404


@pytest.mark.req("FH-8", "PA-7")
def test_ledger_export_holds_the_same_rows_as_the_page(client: FlaskClient, world: dict[str, str]) -> None:
    login(client, "pa_office")
    for query in ("", "?status=handling", "?month=2026-09"):
        shown = case_rows(page(client, f"/supervision/ledger{query}"))
        response = client.get(f"/supervision/ledger.xlsx{query}")
        assert response.status_code == 200
        assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        assert "attachment" in response.headers["Content-Disposition"]
        ws = load_workbook(BytesIO(response.data)).active
        header, body = table(ws)
        assert header[0] == "业务编号" and header[8] == "台账状态" and header[9] == "是否逾期"
        assert [r[0] for r in body] == list(shown)  # same cases, same order
        for r in body:
            cells = shown[r[0]]["cells"]
            assert (r[1], r[8], r[9]) == (cells[1], cells[7], "是" if shown[r[0]]["overdue"] == "yes" else "否")
            assert r[6].strftime("%Y-%m-%d %H:%M") == cells[5]  # Asia/Shanghai wall time, as on the page
    ws = load_workbook(BytesIO(client.get("/supervision/ledger.xlsx").data)).active
    b = next(r for r in table(ws)[1] if r[0] == world["B"])
    assert b[7].strftime("%Y-%m-%d %H:%M") == "2026-10-10 23:59" and b[8] == "挂账" and b[9] == "是"


# --- 跟踪督办 -----------------------------------------------------------------------------------------------
@pytest.mark.req("PA-9")
def test_tracking_shows_open_cases_per_station_overdue_first_and_average_days(client: FlaskClient,
                                                                             world: dict[str, str]) -> None:
    login(client, "pa_super")  # the county's 督办 sees every station (a station's office only its own)
    html = page(client, "/supervision/tracking")
    units = {attrs["unit"]: attrs for attrs in
             (dict(re.findall(r'data-(\w+)="([^"]*)"', a))
              for a in re.findall(r"<tr (data-unit=[^>]*)>", section(html, "tracking-units")))}
    assert list(units) == ["PA01", "PA02"]
    # PA01: B (overdue) and D open; A answered 10-09, received 09-30: 2 working days (10-08, 10-09)
    assert (units["PA01"]["open"], units["PA01"]["overdue"], units["PA01"]["average"]) == ("2", "1", "2.0")
    assert (units["PA02"]["open"], units["PA02"]["overdue"], units["PA02"]["average"]) == ("1", "0", "")
    stages = section(html, "tracking-units")
    # PA01: B waits at two open tasks (its handling and the 督办 follow-up), D to classify; a case counts once
    # under each step it waits at
    pa01 = re.search(r'<tr data-unit="PA01".*?</tr>', stages, re.S).group(0)
    assert all(f"{stage}：1" in pa01 for stage in ("代办办理", "跟踪督办", "受理与分类")), pa01
    assert stages.count("受理与分类：1") == 2  # and C at PA02
    open_rows = case_rows(html, "tracking-open")
    assert list(open_rows)[0] == world["B"] and open_rows[world["B"]]["overdue"] == "yes"
    assert set(open_rows) == {world["B"], world["C"], world["D"]}  # A is closed
    assert "在办 3 件，其中逾期 1 件" in html
    team = client.application.test_client()
    login(team, "fh_team")
    fh = page(team, "/supervision/tracking")
    assert world["T"] in fh and world["B"] not in fh


# --- 月度简报 -----------------------------------------------------------------------------------------------
def briefing_rows(html: str) -> dict[str, dict[str, str]]:
    out = {}
    for unit, body in re.findall(r'<tr data-unit="([^"]+)"[^>]*>(.*?)</tr>', section(html, "briefing"), re.S):
        out[unit] = dict(re.findall(r'<td data-col="(\w+)">([^<]*)</td>', body))
    return out


@pytest.mark.req("FH-10")
def test_monthly_briefing_per_unit_and_its_download(client: FlaskClient, world: dict[str, str]) -> None:
    login(client, "fh_super")
    september = briefing_rows(page(client, "/supervision/briefing?month=2026-09"))
    assert list(september) == ["FH-CENTRE", "FH-ZJJ", "合计"]
    centre, zjj, total = september["FH-CENTRE"], september["FH-ZJJ"], september["合计"]
    # Q: answered on the spot by the centre, rated 满意; T: transferred to 区住建局, its limit not yet passed
    assert (centre["received"], centre["answered_on_time"], centre["satisfied"], centre["satisfaction_rate"]) == (
        "1", "1", "1", "100.0%")
    assert (zjj["received"], zjj["answered_on_time"], zjj["carried"], zjj["satisfaction_rate"]) == ("1", "0", "0", "—")
    assert (total["received"], total["answered_on_time"], total["carried"]) == ("2", "1", "0")
    october = briefing_rows(page(client, "/supervision/briefing?month=2026-10"))
    assert (october["FH-ZJJ"]["carried"], october["FH-ZJJ"]["supervised"], october["FH-ZJJ"]["received"]) == (
        "1", "1", "0")
    assert "FH-CENTRE" not in october and october["合计"]["carried"] == "1"
    assert page(client, "/supervision/briefing").count('value="2026-10"') == 1  # defaults to this month

    response = client.get("/supervision/briefing.xlsx?month=2026-10")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    ws = load_workbook(BytesIO(response.data)).active
    assert ws["A1"].value == "奉化区服务企业情况简报（2026-10）"
    body = {r[0]: r for r in table(ws)[1]}
    assert set(body) == set(october)
    assert (body["FH-ZJJ"][4], body["FH-ZJJ"][5], body["FH-ZJJ"][6]) == (0, 1, 1)  # late, carried, 催办
    for unit, cells in october.items():
        assert str(body[unit][2]) == cells["received"] and str(body[unit][5]) == cells["carried"]

    pa_client = client.application.test_client()
    login(pa_client, "pa_super")  # the Pan'an briefing holds no Fenghua unit
    pa = briefing_rows(page(pa_client, "/supervision/briefing?month=2026-09"))
    assert list(pa) == ["PA01", "PA02", "合计"]
    # A and B at PA01 (handled and co-handled by the station itself: counted once each), C at PA02
    assert (pa["PA01"]["received"], pa["PA02"]["received"], pa["合计"]["received"]) == ("2", "1", "3")
    pa_october = briefing_rows(page(pa_client, "/supervision/briefing?month=2026-10"))
    # A answered 10-09 within its 3 working days; B carried after its 督办; D received in October
    assert (pa_october["PA01"]["answered_on_time"], pa_october["PA01"]["carried"],
            pa_october["PA01"]["supervised"]) == ("1", "1", "1")


@pytest.mark.req("FH-10")
def test_bad_month_is_refused_with_a_chinese_message(client: FlaskClient) -> None:
    login(client, "fh_super")
    for url in ("/supervision/briefing?month=2026-13", "/supervision/briefing?month=2026/09",
                "/supervision/briefing.xlsx?month=abc"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert "月份格式应为 YYYY-MM" in response.get_data(as_text=True)


# --- the board against a recount (#17 item 5: the aggregates were merged and the count reused) ---------------
def test_tracking_counts_and_order_equal_a_recount(web_engine: ProcessEngine, clock: FixedClock,
                                                   world: dict[str, str]) -> None:
    """Generated cases at every stage (fresh, classified, handled, closed, timed out) on both processes: the
    per-unit counts and every page of the open list are what a recount of the whole rows gives."""
    from tests.test_briefing import assert_board_equals_recount

    for n in range(6):
        key = pan_an(web_engine, unit=("PA01", "PA02")[n % 2], title=f"生成 {n}")
        if n % 3:
            pa_complex(web_engine, key)
        fenghua(web_engine, title=f"生成 {n}")
    clock.set("2026-10-20T10:00:00")
    web_engine.management.run_due_timers()
    for region in ("pan_an", "fenghua", None):
        assert_board_equals_recount(web_engine, region, clock.now())
