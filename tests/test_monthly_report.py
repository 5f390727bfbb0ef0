"""The monthly 简报 as a document (web/read/monthly.py, web/report_doc.py, web/pdf.py, qifu report monthly) on a
generated month of both seed processes: the figures against a hand count, every section heading in the HTML
and in the PDF's text (FH-10)."""

from __future__ import annotations

import json
import re
import unicodedata
from io import BytesIO

import pytest
from click.testing import CliRunner

from tests.month_data import by_hand, deploy_seeds, generate_month
from web.read.kpi import parse_period
from web.read.monthly import SECTIONS, monthly_report
from web.report_doc import render, render_html


@pytest.fixture
def month(case_engine):
    deploy_seeds(case_engine)
    generate_month(case_engine, "2026-08", cases=40)
    return case_engine


def _text(pdf: bytes) -> str:
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)
    # Noto CJK's ToUnicode maps some ideographs to Kangxi radicals (⽉ for 月): NFKC folds them back
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@pytest.mark.req("FH-10")
def test_generated_month_renders_as_html_and_pdf_with_hand_counted_figures(month) -> None:
    pytest.importorskip("pypdf")
    from web.pdf import find_chromium

    period = parse_period("2026-08")
    with month.read() as s:
        doc = monthly_report(s, "2026-08", now=month.clock.now())
        previous = monthly_report(s, "2026-07", now=month.clock.now())
    hand, _ = by_hand(month, period.start, period.end)
    assert doc.volume == hand.received == 40 and doc.last_month == 0 and previous.volume == 0
    assert doc.kpi.total.answered == hand.answered and doc.kpi.total.overdue_open == hand.overdue_open
    assert sum(c.count for c in doc.by_category) == 40 and sum(c.count for c in doc.by_channel) == 40
    assert all(not re.fullmatch(r"[a-z0-9_]+", c.name) for c in doc.by_channel + doc.by_category)  # names, not codes
    assert doc.ranking and all(r.answered for r in doc.ranking)
    rates = [r.on_time_rate or 0 for r in doc.ranking]
    assert rates == sorted(rates, reverse=True)
    html = render_html(doc)
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in html
    assert html.count("<svg") == 5 and "<script" not in html
    assert f'data-figure="volume">{hand.received}<' in html
    assert f'data-figure="answered">{hand.answered}<' in html
    assert f'data-figure="carried_total">{doc.carried_total}<' in html
    if find_chromium() is None:
        pytest.skip("chromium is not installed")
    text = _text(render(doc, "pdf"))
    for wanted in ("服务企业情况简报（2026年8月）", *SECTIONS, f"本月共受理企业诉求{hand.received}件",
                   f"本月办结{hand.answered}件", f"期末超期未办结{hand.overdue_open}件", "按问题分类", "满意度构成"):
        assert unicodedata.normalize("NFKC", wanted) in text, wanted


@pytest.mark.req("FH-10")
def test_report_monthly_cli(month, tmp_path, monkeypatch) -> None:
    from web.cli import main

    monkeypatch.setenv("QIFU_DATABASE_URL", month.url)
    out = tmp_path / "brief.html"
    result = CliRunner().invoke(main, ["report", "monthly", "--month", "2026-08", "--region", "pan_an", "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "磐安县服务企业情况简报（2026年8月）" in html and all(h in html for h in SECTIONS)
    as_json = CliRunner().invoke(main, ["--json", "report", "monthly", "--month", "2026-08", "-o", str(out)])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["volume"] == 40
    for args, field in ((["--month", "2026-13"], None), (["--month", "2026-08", "--region", "mars"], "region"),
                        (["--month", "2026-08", "--format", "doc"], "format")):
        bad = CliRunner().invoke(main, ["--json", "report", "monthly", *args])
        assert bad.exit_code == 2, bad.output
        error = json.loads(bad.output)
        assert error["error"] == "error" and error["message"]
        if field:
            assert field in json.dumps(error)
    from web.pdf import find_chromium

    if find_chromium() is not None:
        pdf = tmp_path / "brief.pdf"
        made = CliRunner().invoke(main, ["report", "monthly", "--month", "2026-08", "--format", "pdf", "-o", str(pdf)])
        assert made.exit_code == 0 and "已生成" in made.output, made.output
        assert unicodedata.normalize("NFKC", "七、典型案例") in _text(pdf.read_bytes())
    plain = CliRunner().invoke(main, ["report", "monthly", "--month", "2026/08"])
    assert plain.exit_code == 2 and "YYYY-MM" in plain.output
    xlsx = tmp_path / "year.xlsx"
    year = CliRunner().invoke(main, ["--json", "report", "assessment", "--year", "2026", "--region", "pan_an",
                                     "--xlsx", str(xlsx)])
    assert year.exit_code == 0, year.output
    units = {r["unit"] for r in json.loads(year.output)["rows"]}
    assert {f"PA{n:02d}" for n in range(1, 16)} <= units and not any(u.startswith("FH") for u in units)
    from openpyxl import load_workbook

    assert load_workbook(xlsx).active["A1"].value == "磐安县成员单位年度考核表（2026年）"
    assert CliRunner().invoke(main, ["--json", "report", "assessment", "--year", "26"]).exit_code == 2
    kpi = CliRunner().invoke(main, ["--json", "report", "kpi", "--period", "2026-Q3"])
    assert kpi.exit_code == 0 and json.loads(kpi.output)["total"]["received"] == 40


def test_pdf_without_chromium_is_a_chinese_error(monkeypatch) -> None:
    from engine.errors import QifuError
    from web import pdf

    with pytest.raises(QifuError, match="未找到 Chromium"):
        pdf.html_to_pdf("<p>简报</p>", chromium="/nonexistent/chromium")
    monkeypatch.setattr(pdf, "CANDIDATES", ("/nonexistent/chromium",))
    assert pdf.find_chromium() is None
    with pytest.raises(QifuError, match="apt-get install chromium fonts-noto-cjk"):
        pdf.html_to_pdf("<p>简报</p>")
