"""案件查询 (``/cases``) and 我的已办 (``/cases/done``), web/views/search.py over web/read/search.py.

The ``world`` of tests/web/test_supervision.py gives cases of both regions moved only through intake, task
completions and timers (Pan'an: A closed, B carried and overdue, C at station PA02, D received in October;
Fenghua: Q closed on the spot, T transferred to FH-ZJJ and overdue). Pages are read as a browser gets them,
logged in as the demo users. The last test runs the read side alone on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import datetime
from types import SimpleNamespace

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from engine.clock import FixedClock
from engine.process_engine import ProcessEngine
from handlers.models import EnterpriseCase
from tests.web import test_supervision
from tests.web.conftest import WEB_DIAGRAM, login, start_case
from tests.web.test_supervision import complete, pan_an
from web.read.search import SearchFilters, search_cases

world = test_supervision.world  # the fixture: cases of both regions


def found(client: FlaskClient, query: str = "") -> list[str]:
    """The case numbers ``/cases?…`` lists (one page), in the order shown."""
    response = client.get(f"/cases{'?' + query if query else ''}")
    assert response.status_code == 200, (query, response.status_code, response.get_data(as_text=True)[-500:])
    return re.findall(r'<tr data-case="([^"]+)"', response.get_data(as_text=True))


def total(client: FlaskClient, query: str = "") -> int:
    html = client.get(f"/cases?{query}").get_data(as_text=True)
    match = re.search(r'id="search-total">共 (\d+) 件', html)
    assert match, html[-800:]
    return int(match.group(1))


def as_user(client: FlaskClient, username: str) -> FlaskClient:
    other = client.application.test_client()
    login(other, username)
    return other


def ledger_row(engine: ProcessEngine, key: str) -> EnterpriseCase:
    with engine.read() as s:
        row = s.scalar(select(EnterpriseCase).where(EnterpriseCase.business_key == key))
        s.expunge(row)
        return row


# --- access and scope -------------------------------------------------------------------------------------
def test_login_first_then_every_role_has_the_nav_link(client: FlaskClient) -> None:
    for url in ("/cases", "/cases/done"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    for username in ("pa_accept", "fh_unit", "pa_super", "auditor", "admin"):
        html = as_user(client, username).get("/tasks").get_data(as_text=True)
        assert 'href="/cases">案件查询</a>' in html, username
        assert ('href="/cases/done">我的已办</a>' in html) is (username != "auditor"), username


def test_each_role_finds_exactly_the_cases_it_may_see(client: FlaskClient, world: dict[str, str]) -> None:
    expected = {"pa_accept": "ABD", "pa2_accept": "C", "pa_super": "ABCD", "fh_super": "QT", "auditor": "QT",
                "fh_unit": ""}
    for username, names in expected.items():
        assert sorted(found(as_user(client, username))) == sorted(world[n] for n in names), username
    # fh_unit (区经信局) handles none of them; T's handling unit FH-ZJJ is not a demo user's unit


def test_a_station_clerk_never_finds_another_station_or_region_by_name_or_number(
        client: FlaskClient, world: dict[str, str]) -> None:
    login(client, "pa_accept")  # PA01
    assert found(client, "q=奉化") == []  # the Fenghua enterprise's name
    assert found(client, "q=宁波奉化示例机械有限公司") == []
    for name in ("C", "Q", "T"):
        response = client.get(f"/cases?q={world[name]}")  # an exact number is no shortcut past the scope
        assert response.status_code == 200, name
        html = response.get_data(as_text=True)
        assert "未找到符合条件的案件" in html and world[name] not in re.sub(r'value="[^"]*"', "", html), name
    assert sorted(found(client, "q=磐安县安文药业")) == sorted(world[n] for n in "ABD")


def test_an_auditor_finds_the_cases_of_the_region(client: FlaskClient, world: dict[str, str]) -> None:
    login(client, "auditor")
    assert sorted(found(client, "q=示例机械")) == sorted([world["Q"], world["T"]])
    assert found(client, "q=安文药业") == []


def test_a_visible_case_number_goes_straight_to_the_case(client: FlaskClient, world: dict[str, str]) -> None:
    login(client, "pa_accept")
    for typed in (world["A"], world["A"].lower(), f" {world['A']} "):
        response = client.get("/cases", query_string={"q": typed})
        assert response.status_code == 302 and response.headers["Location"] == f"/cases/{world['A']}", typed
    # with another filter it is a search like any other
    assert found(client, f"q={world['A']}&status=closed") == [world["A"]]
    # part of a number lists the matches
    day = world["A"].split("-")[1]
    assert sorted(found(client, f"q={day}")) == sorted(world[n] for n in "AB")


# --- the filters ------------------------------------------------------------------------------------------
def test_each_filter(client: FlaskClient, world: dict[str, str]) -> None:
    pa = as_user(client, "pa_super")
    fh = as_user(client, "fh_super")
    keys = {v: k for k, v in world.items()}

    def names(c: FlaskClient, query: str) -> str:
        return "".join(sorted(keys[key] for key in found(c, query)))

    assert names(pa, "unit=PA02") == "C"
    assert names(fh, "unit=FH-ZJJ") == "T"  # involved (transferred to), not accepting
    assert names(fh, "category=factor_land") == "QT"
    assert names(fh, "category=factor") == "QT"  # a top-level category includes its sub-items
    assert names(fh, "category=factor_power") == ""
    assert names(fh, "channel=hotline") == "Q"
    assert names(fh, "channel=window_8718") == "T"
    assert names(pa, "status=closed") == "A" and names(pa, "status=carried") == "B"
    assert names(pa, "status=handling") == "CD" and names(fh, "status=closed") == "Q"
    # received: A, B, C on 09-30, D on 10-12 (Shanghai days, both ends inclusive)
    assert names(pa, "received_from=2026-10-12") == "D"
    assert names(pa, "received_to=2026-09-30") == "ABC"
    assert names(pa, "received_from=2026-09-30&received_to=2026-09-30") == "ABC"
    assert names(pa, "received_from=2026-10-01&received_to=2026-10-11") == ""
    assert names(pa, "closed_from=2026-10-09&closed_to=2026-10-09") == "A"
    assert names(pa, "closed_to=2026-10-08") == ""
    assert names(fh, "closed_from=2026-09-30&closed_to=2026-09-30") == "Q"
    assert names(pa, "overdue=1") == "B" and names(fh, "overdue=1") == "T"
    assert names(pa, "overdue=1&status=closed") == ""
    # each row: number (link), enterprise, title, unit, category, channel, received, status, deadline, mark
    html = fh.get("/cases?q=" + world["T"] + "&overdue=1").get_data(as_text=True)
    row = re.search(rf'<tr data-case="{world["T"]}"[^>]*>(.*?)</tr>', html, re.S).group(1)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
    assert f'href="/cases/{world["T"]}"' in row
    assert cells == [world["T"], "宁波奉化示例机械有限公司 新厂房用地指标", "8718中心", "土地", "奉化8718平台服务窗口",
                     "2026-09-30 10:00", "挂账", "2026-10-09 23:59", "逾期"]


def test_overdue_means_flagged_or_past_an_open_deadline(client: FlaskClient, web_engine: ProcessEngine,
                                                        clock: FixedClock) -> None:
    """No timer has fired yet (nothing flagged the case), but its open task's deadline has passed."""
    late = start_case(web_engine, enterprise_name="逾期未催办企业").business_key
    login(client, "pa_accept")
    assert found(client, "overdue=1") == []
    clock.set("2026-10-12T10:00:00")
    assert not ledger_row(web_engine, late).overdue
    assert found(client, "overdue=1") == [late]
    assert 'class="light light-red">逾期' in client.get("/cases?q=逾期未催办").get_data(as_text=True)


def test_percent_and_underscore_in_the_text_are_literal(client: FlaskClient, web_engine: ProcessEngine) -> None:
    keys = {name: start_case(web_engine, enterprise_name=name).business_key
            for name in ("百分%科技有限公司", "百分百科技有限公司", "下划_线有限公司", "下划线有限公司")}
    login(client, "pa_accept")
    assert found(client, "q=%25") == [keys["百分%科技有限公司"]]
    assert found(client, "q=_") == [keys["下划_线有限公司"]]
    assert found(client, "q=百分%25") == [keys["百分%科技有限公司"]]
    assert found(client, "q=下划_") == [keys["下划_线有限公司"]]
    assert sorted(found(client, "q=有限公司")) == sorted(keys.values())


def test_credit_code_is_searched(client: FlaskClient, web_engine: ProcessEngine) -> None:
    key = start_case(web_engine, credit_code="91330727MA2E0X1234").business_key
    start_case(web_engine)
    login(client, "pa_accept")
    assert found(client, "q=91330727MA2E") == [key]
    assert found(client, "q=ma2e0x1234") == [key]  # typed in lower case


# --- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "message"), [
    ("received_from=2026-13-01", "受理日期（起）格式应为 YYYY-MM-DD"),
    ("received_to=30.09.2026", "受理日期（止）格式应为 YYYY-MM-DD"),
    ("closed_from=2026-9-1", "销账日期（起）格式应为 YYYY-MM-DD"),
    ("received_from=20260930", "受理日期（起）格式应为 YYYY-MM-DD"),
    ("closed_to=yesterday", "销账日期（止）格式应为 YYYY-MM-DD"),
    ("received_from=2026-10-02&received_to=2026-10-01", "受理日期（起）不能晚于受理日期（止）"),
    ("page=abc", "页码应为 1 到 999999 之间的整数"),
    ("page=0", "页码应为 1 到 999999 之间的整数"),
    ("page=-1", "页码应为 1 到 999999 之间的整数"),
    ("status=nonsense", "未知的台账状态"),
    ("q=a%00b", "控制字符"),
])
def test_bad_input_is_a_chinese_message_never_a_500(client: FlaskClient, query: str, message: str) -> None:
    login(client, "pa_accept")
    response = client.get(f"/cases?{query}")
    html = response.get_data(as_text=True)
    assert response.status_code == 400, query
    assert message in html and 'id="search-error"' in html and 'id="case-search"' in html, query


def test_bad_page_of_done_is_a_chinese_message(client: FlaskClient) -> None:
    login(client, "pa_accept")
    response = client.get("/cases/done?page=x1")
    assert response.status_code == 400 and "页码应为" in response.get_data(as_text=True)


def test_empty_result_says_not_found(client: FlaskClient) -> None:
    login(client, "pa_accept")
    html = client.get("/cases?q=没有这家企业").get_data(as_text=True)
    assert "未找到符合条件的案件" in html and "共 0 件" in html


# --- paging -----------------------------------------------------------------------------------------------
def test_paged_fifty_newest_first_with_the_total(client: FlaskClient, web_engine: ProcessEngine,
                                                  clock: FixedClock) -> None:
    keys = []
    for i in range(55):
        clock.set(f"2026-09-30T{10 + i // 60:02d}:{i % 60:02d}:00")
        keys.append(start_case(web_engine, enterprise_name=f"分页测试企业{i:02d}").business_key)
    start_case(web_engine, unit="PA02", enterprise_name="分页测试企业他站")  # not in pa_accept's scope
    login(client, "pa_accept")
    newest_first = list(reversed(keys))
    assert total(client, "q=分页测试") == 55
    assert found(client, "q=分页测试") == newest_first[:50]
    assert found(client, "q=分页测试&page=2") == newest_first[50:]
    assert found(client, "q=分页测试&page=99") == newest_first[50:]  # past the end: the last page
    html = client.get("/cases?q=分页测试").get_data(as_text=True)
    assert "第 1 / 2 页" in html and "page=2" in html and "q=%E5%88%86" in html  # the pager keeps the filters


# --- 我的已办 ---------------------------------------------------------------------------------------------
def done(client: FlaskClient, query: str = "") -> list[tuple[str, str]]:
    response = client.get(f"/cases/done{'?' + query if query else ''}")
    assert response.status_code == 200
    rows = re.findall(r'<tr data-case="([^"]+)">\s*<td>.*?</td>\s*<td>([^<]*)</td>', response.get_data(as_text=True),
                      re.S)
    return rows


def test_done_lists_the_clerks_own_completions_newest_first(client: FlaskClient, web_engine: ProcessEngine,
                                                             clock: FixedClock) -> None:
    first, second, others = pan_an(web_engine), pan_an(web_engine), pan_an(web_engine)
    complete(web_engine, first, "Task_Classify", {"classification": "complex", "scope": "area", "notes": "研判"},
             actor="pa_accept")
    clock.set("2026-09-30T11:00:00")
    complete(web_engine, second, "Task_Classify", {"classification": "complex", "scope": "area", "notes": "研判"},
             actor="pa_accept")
    complete(web_engine, others, "Task_Classify", {"classification": "complex", "scope": "area", "notes": "研判"},
             actor="pa_appeal")
    login(client, "pa_accept")
    rows = done(client)
    assert [key for key, _ in rows] == [second, first]
    assert all(name.strip() for _, name in rows)
    html = client.get("/cases/done").get_data(as_text=True)
    assert "共 2 项已办任务" in html and f'href="/cases/{second}"' in html and "2026-09-30 11:00" in html
    assert [key for key, _ in done(as_user(client, "pa_appeal"))] == [others]
    assert done(as_user(client, "pa_agent")) == []


def test_done_hides_cases_the_user_may_no_longer_see(client: FlaskClient, web_engine: ProcessEngine) -> None:
    key = pan_an(web_engine)
    complete(web_engine, key, "Task_Classify", {"classification": "complex", "scope": "area", "notes": "研判"},
             actor="pa2_accept")  # then the case is PA01's only: as if the clerk had moved stations
    login(client, "pa2_accept")
    assert done(client) == []
    html = client.get("/cases/done").get_data(as_text=True)
    assert key not in html and "共 0 项已办任务" in html  # not counted either: the scope is in the query


# --- the read side on both databases ----------------------------------------------------------------------
def test_search_read_side_on_both_databases(case_engine: ProcessEngine, clock: FixedClock) -> None:
    from handlers.intake import submit_case

    case_engine.deploy(WEB_DIAGRAM.read_bytes(), filename=WEB_DIAGRAM.name, actor="test")
    base = {"unit": "PA01", "channel": "walk_in", "category": "factor_power", "contact_name": "李经理",
            "contact_phone": "13812345678", "title": "标题", "description": "内容"}
    keys = {name: submit_case(case_engine, "web_case", {**base, "enterprise_name": name}, region="pan_an")
            .business_key for name in ("百分%科技", "百分百科技", "下划_线", "下划线")}
    other = submit_case(case_engine, "web_case", {**base, "unit": "PA02", "enterprise_name": "百分%他站"},
                        region="pan_an").business_key
    with case_engine.session() as s:  # one case closed on 10-01 (Shanghai), the others open
        s.execute(update(EnterpriseCase).where(EnterpriseCase.business_key == keys["下划线"])
                  .values(ledger_status="closed", closed_at=datetime.fromisoformat("2026-10-01T00:30:00+08:00")))
    clerk = SimpleNamespace(unit="PA01", region="pan_an", roles=frozenset({"综合受理板块"}))
    county = SimpleNamespace(unit="PA-COUNTY", region="pan_an", roles=frozenset({"督办"}))

    def search(viewer: SimpleNamespace, **args: str) -> list[str]:
        with case_engine.read() as s:
            page = search_cases(case_engine, s, viewer, SearchFilters.from_args(args), now=clock.now())
        return [r.business_key for r in page.rows]

    assert search(clerk, q="%") == [keys["百分%科技"]]
    assert search(county, q="%") == [other, keys["百分%科技"]]
    assert search(clerk, q="_") == [keys["下划_线"]]
    assert search(clerk, q=keys["下划线"].lower()) == [keys["下划线"]]
    assert search(clerk, closed_from="2026-10-01", closed_to="2026-10-01") == [keys["下划线"]]
    assert search(clerk, closed_to="2026-09-30") == []
    assert search(clerk, status="closed") == [keys["下划线"]]
