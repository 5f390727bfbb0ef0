"""What each spreadsheet export holds, column by column; :mod:`web.spreadsheet` writes them.

The page and its download show the same rows: the ledger export takes the rows the ledger page lists, the
briefing export the report the briefing page renders (and ``qifu briefing --xlsx`` writes the same file).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .read import ledger as ledger_report
from .spreadsheet import Column, Sheet

LEDGER_COLUMNS = (
    Column("业务编号", width=20), Column("受理单位", width=24), Column("企业名称", width=28),
    Column("诉求事项", width=36), Column("问题分类", width=14), Column("受理渠道", width=14),
    Column("受理时间", "datetime"), Column("当前期限", "datetime"), Column("台账状态", width=10),
    Column("是否逾期", width=10), Column("当前环节", width=24), Column("答复时间", "datetime"),
    Column("销账时间", "datetime"), Column("满意度", width=10), Column("承办单位", width=24),
)


def ledger_sheet(rows: Iterable[ledger_report.LedgerRow], codes: Any, notes: list[str]) -> Sheet:
    """The 督办台账 as one sheet; ``codes`` (web.queries.CodeNames) names categories, channels and units."""
    def values(r: ledger_report.LedgerRow) -> list[Any]:
        handling = codes.units.get(r.handling_unit, r.handling_unit) if r.handling_unit else ""
        return [r.business_key, r.unit_name, r.enterprise_name, r.title or "",
                codes.categories.get(r.category or "", r.category or ""),
                codes.channels.get(r.channel or "", r.channel or ""), r.received_at, r.deadline, r.status_name,
                r.overdue, r.stage or "", r.answered_at, r.closed_at, r.satisfaction or "", handling]

    return Sheet("督办台账", "督办台账", LEDGER_COLUMNS, (values(r) for r in rows), notes)


def briefing_sheet(report: ledger_report.Briefing, notes: list[str]) -> Sheet:
    """The monthly briefing's table per unit, with its 合计 row."""
    kinds = {"unit_name": ("text", 28), "unit": ("text", 14), "satisfaction_rate": ("percent", None),
             "on_time_rate": ("percent", None)}
    columns = [Column(label, *kinds.get(name, ("number", None))) for name, label in ledger_report.COLUMNS]
    region = ledger_report.REGION_NAMES.get(report.region, report.region or "")
    rows = ([getattr(r, name) for name, _ in ledger_report.COLUMNS] for r in [*report.rows, report.total])
    return Sheet(f"简报{report.month}", f"{region}服务企业情况简报（{report.month}）", columns, rows, notes)


def kpi_sheet(report: Any, notes: list[str]) -> Sheet:
    """The KPIs per unit of :func:`web.read.kpi.kpis`, with the 合计 row (rates as percentages)."""
    from .read.kpi import COLUMNS as KPI_COLUMNS

    columns = [Column("单位编码", width=14)] + [
        Column(label, kind if kind != "text" else "text", 28 if name == "unit_name" else None)
        for name, label, kind in KPI_COLUMNS]
    rows = ([r.unit, *(getattr(r, name) for name, _, _ in KPI_COLUMNS)] for r in [*report.rows, report.total])
    region = ledger_report.REGION_NAMES.get(report.region, report.region or "")
    return Sheet("考核指标", f"{region}服务企业考核指标（{report.period.label}）", columns, rows, notes)


def assessment_sheet(result: Any, notes: list[str]) -> Sheet:
    """The year-end assessment table of :func:`web.read.assessment.assessment`, one row per member unit."""
    from .read.assessment import COLUMNS as ASSESSMENT_COLUMNS

    columns = [Column("单位编码", width=14), Column("单位", width=28)] + [
        Column(label, kind) for _, label, kind in ASSESSMENT_COLUMNS]
    rows = ([r.unit, r.unit_name, *(getattr(r, name) for name, _, _ in ASSESSMENT_COLUMNS)]
            for r in [*result.rows, result.total])
    region = ledger_report.REGION_NAMES.get(result.report.region, result.report.region or "")
    return Sheet(f"年度考核{result.year}", f"{region}成员单位年度考核表（{result.year}年）", columns, rows, notes)
