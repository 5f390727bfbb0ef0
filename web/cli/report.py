"""``qifu report monthly --month YYYY-MM [--region R] [--format html|pdf] [-o FILE]``: the monthly 简报 as a
document (FH-10), the same one the supervision page renders; ``qifu report kpi --period P``: the KPIs;
``qifu report assessment --year YYYY``: the year-end assessment table."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.errors import QifuError

from . import main, pass_state, reports_errors

REGIONS = ("pan_an", "fenghua")
FORMATS = ("html", "pdf")


def _region(region: str | None) -> str | None:
    if region in (None, ""):
        return None
    if region not in REGIONS:
        raise QifuError(f"区域无效：“{region}”，应为 pan_an（磐安）或 fenghua（奉化）", field="region")
    return region


@main.group()
def report() -> None:
    """Supervisors' reports: the monthly 简报 (HTML/PDF) and the KPIs."""


@report.command()
@click.option("--month", required=True, help="YYYY-MM")
@click.option("--region", help="pan_an | fenghua (default: both)")
@click.option("--format", "fmt", default="html", show_default=True, help="html | pdf")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="file to write (default: stdout for html)")
@pass_state
@reports_errors
def monthly(state, month: str, region: str | None, fmt: str, output: str | None) -> None:
    """The monthly briefing of MONTH: 基本情况, 办理情况, 回访与满意度, 超期与挂账, 督办与问责, 热点问题."""
    from web.read.monthly import monthly_report
    from web.report_doc import render

    region = _region(region)
    if fmt not in FORMATS:
        raise QifuError(f"格式无效：“{fmt}”，应为 html 或 pdf", field="format")
    with state.engine.read() as session:
        doc = monthly_report(session, month, region, now=state.engine.clock.now())
    data = render(doc, fmt)
    if output is None and (fmt == "pdf" or state.json):
        output = f"简报-{doc.month}{'-' + region if region else ''}.{fmt}"
    if output is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise QifuError(f"无法写入 {output}：{exc.strerror or exc}") from None
    state.out(f"已生成 {doc.title}：{output}", {**doc.to_dict(), "output": output, "format": fmt, "bytes": len(data)})


@report.command()
@click.option("--period", required=True, help="YYYY | YYYY-Qn | YYYY-MM | YYYY-MM-DD~YYYY-MM-DD")
@click.option("--region", help="pan_an | fenghua (default: both)")
@pass_state
@reports_errors
def kpi(state, period: str, region: str | None) -> None:
    """The KPIs per unit of PERIOD (definitions: docs/kpi.md)."""
    from web.read import kpi as kpis

    region = _region(region)
    parsed = kpis.parse_period(period)
    with state.engine.read() as session:
        found = kpis.kpis(session, parsed, region)
    lines = [f"考核指标 {parsed.label}", "  ".join(label for _, label, _ in kpis.COLUMNS)]
    for r in [*found.rows, found.total]:
        lines.append("  ".join(kpis.shown(getattr(r, name), kind) for name, _, kind in kpis.COLUMNS))
    state.out("\n".join(lines), found.to_dict())


@report.command()
@click.option("--year", required=True, help="YYYY")
@click.option("--region", help="pan_an | fenghua (default: both)")
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False), help="also write an .xlsx file")
@pass_state
@reports_errors
def assessment(state, year: str, region: str | None, xlsx_path: str | None) -> None:
    """The year-end assessment table: every member unit with the year's KPIs, 督办/问责 and ratings."""
    from web.read import kpi as kpis
    from web.read.assessment import COLUMNS
    from web.read.assessment import assessment as year_table

    region = _region(region)
    with state.engine.read() as session:
        result = year_table(session, year, region)
    if xlsx_path:
        from web.exports import assessment_sheet
        from web.spreadsheet import export_notes, workbook_bytes

        notes = export_notes({"年份": str(result.year), "区域": region or ""}, exported_by="命令行",
                             at=state.engine.clock.now())
        try:
            Path(xlsx_path).write_bytes(workbook_bytes(assessment_sheet(result, notes)))
        except OSError as exc:
            raise QifuError(f"无法写入 {xlsx_path}：{exc.strerror or exc}") from None
    lines = [f"年度考核 {result.year}", "  ".join(["单位", *(label for _, label, _ in COLUMNS)])]
    for r in [*result.rows, result.total]:
        lines.append("  ".join([r.unit_name, *(kpis.shown(getattr(r, name), kind) for name, _, kind in COLUMNS)]))
    state.out("\n".join(lines), {**result.report.to_dict(), "year": result.year, "xlsx": xlsx_path})
