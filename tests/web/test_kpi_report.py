"""考核指标, 超期预警 with one-click 催办, and the 简报 document (web/views/supervision.py; FH-10, PA-9).

The world of tests/web/test_supervision.py (both seed diagrams, clock at 2026-10-12 10:00 Shanghai):
Pan'an A (PA01) answered 10-09 and closed, B (PA01) past its 3 working days → 督办/挂账, C (PA02) at
classification, D (PA01) received 10-12; Fenghua Q answered on the spot 09-30 and rated 满意, T transferred to
区住建局 (FH-ZJJ), past its 2 working days → 催办, 挂账.
"""

from __future__ import annotations

import re
import unicodedata
from io import BytesIO

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select

from engine.process_engine import ProcessEngine
from handlers.models import EnterpriseCase, Outbox, Supervision
from tests.web.conftest import csrf_token, login
from tests.web.test_supervision import page, world  # noqa: F401  (the fixture)


def cells(html: str, table_id: str) -> dict[str, dict[str, str]]:
    """data-unit → data-col → text of a KPI table."""
    body = re.search(rf'<table class="list" id="{table_id}">(.*?)</table>', html, re.S)
    assert body, table_id
    out = {}
    for unit, row in re.findall(r'<tr data-unit="([^"]+)"[^>]*>(.*?)</tr>', body.group(1), re.S):
        out[unit] = dict(re.findall(r'<td data-col="(\w+)">([^<]*)</td>', row))
    return out


# --- 考核指标 -----------------------------------------------------------------------------------------------
@pytest.mark.req("FH-10", "PA-9")
def test_kpi_page_counts_a_month_and_a_range_by_hand(client: FlaskClient, world: dict[str, str]) -> None:  # noqa: F811
    login(client, "pa_super")
    html = page(client, "/supervision/kpi?period=2026-10")
    total = cells(html, "kpi")["合计"]
    # October in Pan'an: D received; A answered 10-09 within its 3 working days (10-08, 10-09 = 2 working days);
    # B open at the month's end with its 督办 (10-11)
    assert (total["received"], total["answered"], total["on_time_rate"]) == ("1", "1", "100.0%")
    assert (total["overdue_open"], total["average_working_days"]) == ("1", "2.0")
    assert total["completion_rate"] == "0.0%"  # D is not answered yet
    sep = cells(page(client, "/supervision/kpi?period=2026-09"), "kpi")["合计"]
    assert (sep["received"], sep["answered"], sep["completion_rate"]) == ("3", "0", "0.0%")
    both = cells(page(client, "/supervision/kpi?from=2026-09-01&to=2026-10-31"), "kpi")["合计"]
    assert (both["received"], both["answered"], both["completion_rate"]) == ("4", "1", "25.0%")
    quarter = cells(page(client, "/supervision/kpi?period=2026-Q4"), "kpi")["合计"]
    assert quarter == total  # nothing happened in Pan'an after October yet
    for word in ("指标口径", "按时办结率", "平均办理时长", "工作日", "回访规则", "暂无数据（待退回/延期功能上线）",
                 "疑难问题与投诉（100%）"):
        assert word in html, word
    assert "区住建局" not in html  # another region's unit never shows


@pytest.mark.req("FH-10")
def test_kpi_page_fenghua_and_bad_periods(client: FlaskClient, world: dict[str, str]) -> None:  # noqa: F811
    login(client, "fh_super")
    rows = cells(page(client, "/supervision/kpi?period=2026-09-01~2026-10-31"), "kpi")
    total = rows["合计"]
    # Q answered on the spot and rated 满意; T still open at the end, 催办 against 区住建局
    assert (total["received"], total["answered"], total["overdue_open"]) == ("2", "1", "1")
    assert (total["satisfaction_rate"], total["revisit_rate"], total["reminders"]) == ("100.0%", "100.0%", "1")
    assert rows["FH-ZJJ"]["received"] == "1" and rows["FH-ZJJ"]["overdue_open"] == "1"
    assert rows["FH-ZJJ"]["reminders"] == "1"
    for bad in ("period=2026-13", "period=abc", "from=2026-10-01", "from=2026-10-09&to=2026-10-01",
                "from=2026-02-30&to=2026-03-01"):
        response = client.get(f"/supervision/kpi?{bad}")
        assert response.status_code == 400, bad
        assert "统计期" in response.get_data(as_text=True) or "日期" in response.get_data(as_text=True) \
            or "月份" in response.get_data(as_text=True)
        assert client.get(f"/supervision/kpi.xlsx?{bad}").status_code == 400
    response = client.get("/supervision/kpi.xlsx?period=2026-Q4")
    assert response.status_code == 200
    ws = load_workbook(BytesIO(response.data)).active
    assert ws["A1"].value == "奉化区服务企业考核指标（2026年第4季度）"
    assert ws.freeze_panes == "A6" and ws.auto_filter.ref.startswith("A5:")
    assert "统计期：2026年第4季度" in ws["A2"].value and "督办（奉化）" in ws["A3"].value
    assert [c.value for c in ws[5]][:4] == ["单位编码", "单位", "受理量", "办结量"]


# --- 超期预警 and 催办 -----------------------------------------------------------------------------------------
@pytest.mark.req("FH-10", "PA-9")
def test_supervisor_sends_a_reminder_from_the_overdue_board(client: FlaskClient, other_client: FlaskClient,
                                                            web_engine: ProcessEngine,
                                                            world: dict[str, str]) -> None:  # noqa: F811
    login(client, "fh_super")
    html = page(client, "/supervision/overdue")
    t = world["T"]
    row = re.search(rf'<tr data-case="{t}" data-overdue="(\w+)" data-days="(-?\d*)"[^>]*>(.*?)</tr>', html, re.S)
    assert row, html
    # due 10-09 23:59; 10-10 (make-up Saturday) and 10-12 are working days: 2 working days overdue on 10-12
    assert (row.group(1), row.group(2)) == ("yes", "2") and "区住建局" in row.group(3)
    assert "超期 2 个工作日" in row.group(3)
    assert world["Q"] not in html and world["B"] not in html  # closed / another region
    assert re.search(r'<tr data-unit="FH-ZJJ"><td>[^<]*</td><td>1</td><td>0</td>', html)
    token = csrf_token(client, "/supervision/overdue")
    assert client.post(f"/supervision/cases/{t}/remind", data={}).status_code == 400  # no CSRF token
    response = client.post(f"/supervision/cases/{t}/remind", data={"csrf_token": token, "message": "请今日内答复"})
    assert response.status_code == 302
    assert "已向区住建局发出催办通知" in client.get(response.headers["Location"]).get_data(as_text=True)
    with web_engine.read() as s:
        case_id = s.scalar(select(EnterpriseCase.id).where(EnterpriseCase.business_key == t))
        notice = s.scalars(select(Outbox).where(Outbox.business_key == t, Outbox.recipient == "FH-ZJJ")
                           .order_by(Outbox.id.desc())).first()
        reminders = list(s.scalars(select(Supervision).where(Supervision.case_id == case_id,
                                                             Supervision.reason.like("一键催办%"))))
    assert notice is not None and "督办人：督办（奉化）" in notice.body and "请今日内答复" in notice.body
    assert [(r.kind, r.unit_code) for r in reminders] == [("催办", "FH-ZJJ")]
    assert "督办（奉化）" in reminders[0].reason
    events = [ev for ev in web_engine.history.events(web_engine.runtime.instance(t).id)
              if ev.action == "reminder_sent"]
    assert [(ev.actor, ev.details["units"], ev.details["sender"]) for ev in events] == [
        ("fh_super", ["FH-ZJJ"], "督办（奉化）")]
    case_page = page(client, f"/cases/{t}")
    assert "一键催办" in case_page and "督办（奉化）" in case_page
    # the KPIs count it: now two 催办 against 区住建局 in October
    rows = cells(page(client, "/supervision/kpi?period=2026-10"), "kpi")
    assert rows["FH-ZJJ"]["reminders"] == "2"
    # another region's supervisor cannot see, let alone remind, the case; a closed case is refused
    login(other_client, "pa_super")
    other_token = csrf_token(other_client, "/supervision/overdue")
    assert other_client.post(f"/supervision/cases/{t}/remind", data={"csrf_token": other_token}).status_code == 404
    closed = client.post(f"/supervision/cases/{world['Q']}/remind", data={"csrf_token": token})
    assert closed.status_code == 409 and "已办结" in closed.get_data(as_text=True)


# --- the 简报 document ----------------------------------------------------------------------------------------
SECTIONS = ("一、基本情况", "二、办理情况", "三、回访与满意度", "四、超期与挂账", "五、督办与问责", "六、热点问题",
            "七、典型案例")


@pytest.mark.req("FH-10")
def test_briefing_document_page_and_bad_input(client: FlaskClient, world: dict[str, str]) -> None:  # noqa: F811
    login(client, "fh_super")
    html = page(client, "/supervision/report?month=2026-09")
    assert "奉化区服务企业情况简报（2026年9月）" in html
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in html, heading
    assert html.count("<svg") >= 5 and "按问题分类" in html and "土地" in html
    assert re.search(r'data-figure="volume">2<', html)  # Q and T
    assert world["T"] in html and "区住建局" in html  # still 挂账, with its unit
    assert world["A"] not in html  # Pan'an
    assert "<script" not in html
    for bad, word in (("month=2026-13", "YYYY-MM"), ("month=2026-Q4", "YYYY-MM"), ("month=2026-09&format=doc", "html 或 pdf")):
        response = client.get(f"/supervision/report?{bad}")
        assert response.status_code == 400 and word in response.get_data(as_text=True), bad


@pytest.mark.req("FH-10")
def test_briefing_document_as_pdf(client: FlaskClient, world: dict[str, str]) -> None:  # noqa: F811
    pypdf = pytest.importorskip("pypdf")
    from web.pdf import find_chromium

    if find_chromium() is None:
        pytest.skip("chromium is not installed")
    login(client, "pa_super")
    response = client.get("/supervision/report?month=2026-10&format=pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = "".join(p.extract_text() for p in pypdf.PdfReader(BytesIO(response.data)).pages)
    # Noto CJK's ToUnicode maps some ideographs to Kangxi radicals (⽉ for 月): NFKC folds them back
    squeezed = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    for text_ in ("磐安县服务企业情况简报（2026年10月）", *SECTIONS, "按时办结率100.0%", "本月共受理企业诉求1件",
                  "上月3件", "期末超期未办结1件", "受理量对比", "满意度构成"):
        assert unicodedata.normalize("NFKC", text_) in squeezed, text_


# --- exports fit for Excel users ------------------------------------------------------------------------------
@pytest.mark.req("FH-10")
def test_ledger_export_fits_chinese_text_and_names_the_handling_unit(client: FlaskClient,
                                                                     world: dict[str, str]) -> None:  # noqa: F811
    from datetime import datetime

    from openpyxl.utils import get_column_letter

    from tests.xlsx import header_row, table
    from web.spreadsheet import text_width

    login(client, "fh_super")
    assert "<th>承办单位</th>" in page(client, "/supervision/ledger") and "区住建局" in page(client, "/supervision/ledger")
    assert "<th>承办单位</th>" in page(client, "/supervision/tracking")
    response = client.get("/supervision/ledger.xlsx?status=carried")
    ws = load_workbook(BytesIO(response.data)).active
    header, rows = table(ws)
    body = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    t = body[world["T"]]
    assert t["承办单位"] == "区住建局" and isinstance(t["受理时间"], datetime)
    assert t["受理时间"].strftime("%Y-%m-%d %H:%M") == "2026-09-30 10:00"  # Beijing wall time, as the note says
    notes = [ws.cell(row=r, column=1).value for r in range(2, header_row(ws))]
    assert "台账状态：挂账" in notes[0] and "督办（奉化）" in notes[1] and "Asia/Shanghai" in notes[2]
    assert ws.freeze_panes == f"A{header_row(ws) + 1}" and ws.auto_filter.ref.startswith(f"A{header_row(ws)}:")
    for name in ("受理单位", "企业名称", "承办单位"):
        column = get_column_letter(header.index(name) + 1)
        widest = max(text_width(str(r[header.index(name)] or "")) for r in rows)
        assert ws.column_dimensions[column].width >= min(widest, 60), name


# --- year-end assessment and bad input ---------------------------------------------------------------------------
@pytest.mark.req("FH-10")
def test_year_end_assessment_lists_every_member_unit(client: FlaskClient, world: dict[str, str]) -> None:  # noqa: F811
    login(client, "fh_super")
    html = page(client, "/supervision/assessment?year=2026")
    rows = cells(html, "assessment")
    assert "FH-ZJJ" in rows and "FH-JXJ" in rows  # 区经信局 had no case: listed with zeros
    assert (rows["FH-ZJJ"]["received"], rows["FH-ZJJ"]["reminders"], rows["FH-ZJJ"]["overdue_open"]) == ("1", "1", "1")
    assert (rows["FH-JXJ"]["received"], rows["FH-JXJ"]["on_time_rate"]) == ("0", "—")
    assert rows["合计"]["satisfied"] == "1" and rows["合计"]["received"] == "2"
    assert not any(code.startswith("PA") for code in rows)  # Fenghua's units only
    response = client.get("/supervision/assessment.xlsx?year=2026")
    ws = load_workbook(BytesIO(response.data)).active
    assert ws["A1"].value == "奉化区成员单位年度考核表（2026年）"
    from tests.xlsx import table

    header, body = table(ws)
    by_unit = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    assert by_unit["FH-ZJJ"]["被催办"] == 1 and by_unit["FH-JXJ"]["受理量"] == 0
    for bad in ("year=20x6", "year=0000", "year=9999", "year=26"):
        assert client.get(f"/supervision/assessment?{bad}").status_code == 400, bad
        assert client.get(f"/supervision/assessment.xlsx?{bad}").status_code == 400, bad


@pytest.mark.req("FH-10", "PA-9")
@pytest.mark.parametrize("url", [
    "/supervision/kpi?period=9999-12", "/supervision/kpi?period=0000", "/supervision/kpi?period=1999-Q1",
    "/supervision/kpi?from=0001-01-01&to=0001-01-02", "/supervision/kpi?from=9999-12-31&to=9999-12-31",
    "/supervision/kpi?period=" + "2" * 500, "/supervision/report?month=9999-12", "/supervision/report?month=0000-01",
    "/supervision/briefing?month=9999-12", "/supervision/report?month=2026-10&format=" + "x" * 300,
])
def test_bad_periods_are_a_chinese_400(client: FlaskClient, url: str) -> None:
    login(client, "pa_super")
    response = client.get(url)
    assert response.status_code == 400, url
    assert "请求无效" in response.get_data(as_text=True)


def test_supervision_pages_need_a_supervising_role(client: FlaskClient) -> None:
    for url in ("/supervision/kpi", "/supervision/overdue", "/supervision/report", "/supervision/assessment"):
        assert client.get(url).status_code == 302, url
    login(client, "fh_unit")
    for url in ("/supervision/kpi", "/supervision/overdue", "/supervision/report?format=pdf",
                "/supervision/assessment.xlsx", "/supervision/kpi.xlsx"):
        assert client.get(url).status_code == 403, url
    token = csrf_token(client, "/")
    assert client.post("/supervision/cases/FH-20260930-0001/remind", data={"csrf_token": token}).status_code == 403


# --- publishing the 简报 to the member units -----------------------------------------------------------------------
@pytest.mark.req("FH-10")
def test_supervisor_publishes_the_briefing_to_the_member_units(client: FlaskClient, other_client: FlaskClient,
                                                                web_engine: ProcessEngine,
                                                                world: dict[str, str]) -> None:  # noqa: F811
    from web.models import AdminLog

    login(other_client, "fh_unit")  # 区经信局's clerk: no supervision pages, and nothing published yet
    assert other_client.get("/supervision/published/2026-09").status_code == 404
    login(client, "fh_super")
    html = page(client, "/supervision/report?month=2026-09")
    assert "尚未发布" in html and "及区委作风办" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post("/supervision/report/publish", data={"month": "2026-09"}).status_code == 400  # no token
    bad = client.post("/supervision/report/publish", data={"csrf_token": token, "month": "2026-9"})
    assert bad.status_code == 400 and "YYYY-MM" in bad.get_data(as_text=True)
    response = client.post("/supervision/report/publish", data={"csrf_token": token, "month": "2026-09"})
    assert response.status_code == 302
    after = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已发布奉化区服务企业情况简报（2026年9月）" in after and "由 督办（奉化） 发布" in after
    with web_engine.read() as s:
        notices = {o.recipient: o for o in s.scalars(select(Outbox).where(Outbox.template == "briefing"))}
        log = list(s.scalars(select(AdminLog).where(AdminLog.kind == "briefing_published")))
    assert {"FH-ZJJ", "FH-JXJ", "FH-ZFB"} <= set(notices) and not any(c.startswith("PA") for c in notices)
    assert "/supervision/published/2026-09" in notices["FH-ZFB"].body and "发布人：督办（奉化）" in notices["FH-ZFB"].body
    assert [(row.actor, row.target) for row in log] == [("fh_super", "fenghua:2026-09")]
    # a member unit reads the published briefing; another region's user does not see Fenghua's
    doc = page(other_client, "/supervision/published/2026-09")
    assert "奉化区服务企业情况简报（2026年9月）" in doc and "一、基本情况" in doc
    assert other_client.get("/supervision/report?month=2026-09").status_code == 403
    assert other_client.get("/supervision/published/2026-08").status_code == 404
    pa = client.application.test_client()
    login(pa, "pa_accept")
    assert pa.get("/supervision/published/2026-09").status_code == 404  # Pan'an has published nothing


@pytest.mark.req("PA-9")
def test_the_unit_sees_the_reminder_and_the_published_briefing_in_its_notices(
        client: FlaskClient, other_client: FlaskClient, world: dict[str, str]) -> None:  # noqa: F811
    login(client, "pa_super")
    board = page(client, "/supervision/overdue")
    b = world["B"]
    row = re.search(rf'<tr data-case="{b}"[^>]*>(.*?)</tr>', board, re.S)
    assert row and "安文街道" in row.group(1)  # B is PA01's own: the station answers for it
    token = csrf_token(client, "/supervision/overdue")
    assert client.post(f"/supervision/cases/{b}/remind", data={"csrf_token": token}).status_code == 302
    month = page(client, "/supervision/report?month=2026-09")
    publish_token = re.search(r'name="csrf_token" value="([^"]+)"', month).group(1)
    client.post("/supervision/report/publish", data={"csrf_token": publish_token, "month": "2026-09"})
    login(other_client, "pa_accept")  # 安文街道站 (PA01)
    assert 'id="nav-notices"' in page(other_client, "/")
    html = page(other_client, "/supervision/notices")
    notices = re.search(r'<table class="list" id="notices">(.*?)</table>', html, re.S).group(1)
    assert b in notices and "督办人：督办（磐安）" in notices and "超期督办" in notices
    assert "2026-09 简报" in html
    pa2 = client.application.test_client()
    login(pa2, "pa2_accept")  # 冷水镇站: not its case
    assert b not in page(pa2, "/supervision/notices")


@pytest.mark.req("FH-10")
def test_supervisor_marks_typical_cases_for_the_briefing(client: FlaskClient, world: dict[str, str]) -> None:  # noqa: F811
    login(client, "fh_super")
    html = page(client, "/supervision/report?month=2026-10")
    assert "<h2>七、典型案例</h2>" in html and "本月未标记典型案例" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    def mark(key: str, note: str):
        return client.post("/supervision/report/typical", data={"csrf_token": token, "month": "2026-10",
                                                                "business_key": key, "note": note})

    assert mark(world["T"], "承办单位超期未答复，已催办").status_code == 302
    assert mark(world["Q"], "热线电话当场答复，企业满意").status_code == 302
    html = page(client, "/supervision/report?month=2026-10")
    section = html[html.index("七、典型案例"):]
    assert section.index(world["T"]) < section.index(world["Q"]) and "已催办" in section and "区住建局" not in section
    assert mark(world["T"], "取消").status_code == 302
    section = page(client, "/supervision/report?month=2026-10")
    assert world["T"] not in section[section.index("七、典型案例"):] and world["Q"] in section
    assert world["Q"] not in page(client, "/supervision/report?month=2026-09").split("七、典型案例")[1]
    for key, note, word in ((world["A"], "磐安的案件", "不在本区域"), ("FH-NOPE", "x", "不存在"), (world["Q"], "", "说明")):
        response = mark(key, note)
        assert response.status_code == 400 and word in response.get_data(as_text=True), key
    bad = client.post("/supervision/report/typical", data={"csrf_token": token, "month": "2026-13",
                                                            "business_key": world["Q"], "note": "x"})
    assert bad.status_code == 400


def test_pdf_page_without_chromium_answers_a_chinese_503(client: FlaskClient, monkeypatch) -> None:
    from web import pdf

    monkeypatch.setattr(pdf, "CANDIDATES", ("/nonexistent/chromium",))
    login(client, "fh_super")
    response = client.get("/supervision/report?month=2026-09&format=pdf")
    assert response.status_code == 503 and "未找到 Chromium" in response.get_data(as_text=True)
    assert client.get("/supervision/report?month=2026-09").status_code == 200  # HTML still works


def test_only_a_region_wide_supervisor_publishes(client: FlaskClient, world: dict[str, str]) -> None:  # noqa: F811
    login(client, "pa_office")  # 企业综合服务办公室 of 安文街道站: supervises its own station only
    html = page(client, "/supervision/report?month=2026-09")
    assert 'id="publish"' not in html and 'id="typical-form"' in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post("/supervision/report/publish", data={"csrf_token": token, "month": "2026-09"}).status_code == 403
