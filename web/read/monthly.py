"""The monthly 简报 as a document (FH-10; PA-9 研判): every section's figures, aggregated in SQL.

Sections, in the order :data:`SECTIONS` names them: 基本情况 (volume, against last month and the same month
last year, by category and channel), 办理情况 (the KPIs per unit of :mod:`web.read.kpi`, and a ranking),
回访与满意度, 超期与挂账 (the cases still 挂账, with their unit), 督办与问责, 热点问题 (the most frequent
categories and enterprises, and whether an enterprise is new this month). The page, ``qifu report monthly``
and the PDF render the same :class:`MonthlyReport` with ``report/monthly.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from engine.errors import QifuError
from handlers.models import CaseUnit, Category, Channel, EnterpriseCase, OrgUnit

from .kpi import KpiReport, Period, UnitKpi, kpis, parse_period
from .overdue import HANDLING_ROLES, responsible_of

SECTIONS = ("一、基本情况", "二、办理情况", "三、回访与满意度", "四、超期与挂账", "五、督办与问责", "六、热点问题",
            "七、典型案例")
REGION_NAMES = {"pan_an": "磐安县", "fenghua": "奉化区"}
CARRIED_LIMIT = 100
TOP = 10


@dataclass
class Count:
    code: str
    name: str
    count: int


@dataclass
class CarriedCase:
    business_key: str
    enterprise_name: str
    title: str | None
    unit_name: str
    responsible: str
    received_at: datetime
    overdue: bool


@dataclass
class HotEnterprise:
    name: str
    count: int
    new: bool  # no case of this enterprise before the month


@dataclass
class MonthlyReport:
    month: str
    region: str | None
    period: Period
    kpi: KpiReport
    volume: int
    last_month: int
    last_year: int
    by_category: list[Count]
    by_channel: list[Count]
    ranking: list[UnitKpi]
    carried: list[CarriedCase]
    carried_total: int
    supervised_units: list[UnitKpi]
    hot_enterprises: list[HotEnterprise]
    generated_at: datetime
    typical: list[Any] = field(default_factory=list)  # web.typical.TypicalCase, marked by a supervisor

    @property
    def region_name(self) -> str:
        return REGION_NAMES.get(self.region or "", "")

    @property
    def title(self) -> str:
        return f"{self.region_name}服务企业情况简报（{self.period.label}）"

    @staticmethod
    def change(now: int, before: int) -> float | None:
        return round((now - before) / before, 4) if before else None

    @property
    def month_change(self) -> float | None:
        return self.change(self.volume, self.last_month)

    @property
    def year_change(self) -> float | None:
        return self.change(self.volume, self.last_year)

    def to_dict(self) -> dict[str, Any]:
        return {"month": self.month, "region": self.region, "title": self.title, "sections": list(SECTIONS),
                "volume": self.volume, "last_month": self.last_month, "last_year": self.last_year,
                "month_change": self.month_change, "year_change": self.year_change,
                "by_category": [vars(c) for c in self.by_category], "by_channel": [vars(c) for c in self.by_channel],
                "kpi": self.kpi.to_dict(), "ranking": [r.unit for r in self.ranking],
                "carried_total": self.carried_total,
                "carried": [{**vars(c), "received_at": c.received_at.isoformat()} for c in self.carried],
                "hot_enterprises": [vars(h) for h in self.hot_enterprises],
                "typical": [vars(t) for t in self.typical]}


def _shift(month: str, months: int) -> str:
    year, mon = (int(x) for x in month.split("-"))
    index = year * 12 + mon - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def typical_cases(session: Session, region: str | None, month: str) -> list[Any]:
    from ..typical import typical_cases as marked

    return marked(session, region, month)


def monthly_report(session: Session, month: str, region: str | None = None,
                   where: ColumnElement[bool] | None = None, *, now: datetime) -> MonthlyReport:
    """The 简报 of ``month`` (``YYYY-MM``; a bad month raises :class:`~engine.errors.QifuError`)."""
    period = parse_period(month)
    if period.kind != "month":
        raise QifuError(f"月份格式应为 YYYY-MM：“{month}”")
    ec = EnterpriseCase
    scope = [*([ec.region == region] if region else []), *([where] if where is not None else [])]

    def received_in(p: Period) -> Any:
        return and_(ec.received_at >= p.start, ec.received_at < p.end)

    def volume(month_text: str) -> int:
        try:
            p = parse_period(month_text)
        except QifuError:  # before the first year a period may name: nothing to compare with
            return 0
        return session.scalar(select(func.count()).select_from(ec).where(*scope, received_in(p))) or 0

    report = kpis(session, period, region, where)
    names = dict(session.execute(select(OrgUnit.code, OrgUnit.name)).all())

    def counts(column: Any, model: Any, missing: str) -> list[Count]:
        labels: dict[str, str] = dict(session.execute(select(model.code, model.name)).all())
        found = session.execute(select(column, func.count()).where(*scope, received_in(period))
                                .group_by(column).order_by(func.count().desc(), column)).all()
        return [Count(code or "", labels.get(code, code) if code else missing, n) for code, n in found]

    ranked = [r for r in report.rows if r.answered]
    ranking = sorted(ranked, key=lambda r: (-(r.on_time_rate or 0), -(r.satisfaction_rate or 0), -r.answered,
                                            r.unit))
    carried_q = select(ec.id, ec.business_key, ec.enterprise_name, ec.title, ec.unit, ec.received_at,
                       ec.overdue).where(*scope, ec.ledger_status == "carried", ec.received_at < period.end)
    carried_total = session.scalar(select(func.count()).select_from(carried_q.subquery())) or 0
    carried_rows = session.execute(carried_q.order_by(ec.received_at, ec.id).limit(CARRIED_LIMIT)).all()
    ids = [r.id for r in carried_rows]
    involved: dict[int, list[tuple[datetime, str]]] = {}
    for case_id, at, code in session.execute(select(CaseUnit.case_id, CaseUnit.at, CaseUnit.unit_code).where(
            CaseUnit.case_id.in_(ids), CaseUnit.role.in_(HANDLING_ROLES))) if ids else []:
        involved.setdefault(case_id, []).append((at, code))
    carried = [CarriedCase(r.business_key, r.enterprise_name, r.title, names.get(r.unit, r.unit),
                           "、".join(names.get(c, c) for c in responsible_of(involved.get(r.id, []), r.unit)),
                           r.received_at, bool(r.overdue)) for r in carried_rows]
    hot = session.execute(select(ec.enterprise_name, func.count()).where(*scope, received_in(period))
                          .group_by(ec.enterprise_name).order_by(func.count().desc(), ec.enterprise_name)
                          .limit(TOP)).all()
    seen_before = set(session.scalars(select(ec.enterprise_name).where(
        *scope, ec.enterprise_name.in_([n for n, _ in hot]), ec.received_at < period.start).distinct())) if hot else set()
    return MonthlyReport(
        month=period.text, region=region, period=period, kpi=report, volume=report.total.received,
        last_month=volume(_shift(period.text, -1)), last_year=volume(_shift(period.text, -12)),
        by_category=counts(ec.category, Category, "未分类"), by_channel=counts(ec.channel, Channel, "未登记渠道"),
        ranking=ranking, carried=carried, carried_total=carried_total,
        supervised_units=[r for r in report.rows if r.reminders or r.supervisions or r.accountability],
        hot_enterprises=[HotEnterprise(n, c, n not in seen_before) for n, c in hot], generated_at=now,
        typical=typical_cases(session, region, period.text))
