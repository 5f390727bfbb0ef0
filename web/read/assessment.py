"""The year-end assessment table (年底考核, FH-10: 按月简报的各单位结果是年底考核的重要依据): every member unit of
the region with the year's KPIs (:mod:`web.read.kpi`), its 催办/督办 and 问责 records and its rating summary.

A member unit that had no case in the year is listed with zeros — an assessment names every unit, not only
those the data mentions. Member units are the region's active units of the kinds that receive or handle
cases (stations and windows, the county window, the resident special team's units, departments, towns and
streets).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from engine.errors import QifuError
from handlers.models import OrgUnit

from .kpi import KpiReport, UnitKpi, kpis, parse_period

MEMBER_KINDS = ("station", "window", "county_window", "special_team", "department", "town")

# the table's columns after the unit: (attribute, label, kind)
COLUMNS: list[tuple[str, str, str]] = [
    ("received", "受理量", "number"), ("answered", "办结量", "number"), ("completion_rate", "办结率", "percent"),
    ("on_time_rate", "按时办结率", "percent"), ("overdue_open", "年末超期未办结", "number"),
    ("average_working_days", "平均办理时长（工作日）", "number"), ("satisfied", "满意", "number"),
    ("basically_satisfied", "基本满意", "number"), ("dissatisfied", "不满意", "number"),
    ("satisfaction_rate", "满意率", "percent"), ("revisit_rate", "回访率", "percent"),
    ("reminders", "被催办", "number"), ("supervisions", "被督办", "number"), ("accountability", "问责", "number"),
]


@dataclass
class Assessment:
    year: int
    report: KpiReport

    @property
    def rows(self) -> list[UnitKpi]:
        return self.report.rows

    @property
    def total(self) -> UnitKpi:
        return self.report.total


def assessment(session: Session, year: str, region: str | None,
               where: ColumnElement[bool] | None = None) -> Assessment:
    """The assessment of ``year`` (``YYYY``) for ``region``'s member units."""
    if not (year or "").strip().isdigit() or len(year.strip()) != 4:
        raise QifuError(f"年份格式应为 YYYY：“{(year or '')[:20]}”")
    report = kpis(session, parse_period(year.strip()), region, where)
    listed = {r.unit for r in report.rows}
    members = session.execute(select(OrgUnit.code, OrgUnit.name).where(
        OrgUnit.active.is_(True), OrgUnit.kind.in_(MEMBER_KINDS), *([OrgUnit.region == region] if region else []))
        .order_by(OrgUnit.sort, OrgUnit.code)).all()
    order = {code: i for i, (code, _) in enumerate(members)}
    report.rows.extend(UnitKpi(code, name) for code, name in members if code not in listed)
    report.rows.sort(key=lambda r: (order.get(r.unit, 1_000_000), r.unit))
    return Assessment(int(year), report)
