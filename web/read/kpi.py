"""Service KPIs per unit and period (FH-10 简报 / 年底考核, PA-9 运行数据分析研判), aggregated in SQL.

Every figure is a ``COUNT``/``SUM``/``AVG`` the database computes over the period's rows, found by the
indexes on receipt, answer, rating, supervision and draw time (``ix_enterprise_case_region_received``,
``ix_enterprise_case_answered``, ``ix_rating_at``, ``ix_supervision_at``, ``revisit_draw.case_id``); nothing
loads a table into Python, so a page costs the same in a centre's first month and in its tenth year. The one
figure that is not a period's rows is 超期未办结, the backlog open at the period's end.

The definitions (also in ``docs/kpi.md`` and on the KPI page, from :data:`DEFINITIONS`):

- **Attribution.** A case counts for every unit that handled or co-handled it (``case_unit`` roles
  handling / co_handling), once per unit; a case nobody was transferred to counts for its accepting unit.
  The 合计 row counts each case once, so the units' rows may add up to more than the total.
- Periods are Asia/Shanghai days: ``[first day 00:00, day after the last 00:00)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, union_all
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI, to_utc
from engine.errors import QifuError
from handlers.models import CaseUnit, EnterpriseCase, OrgUnit, Outbox, Rating, RevisitDraw, Supervision

HANDLING_ROLES = ("handling", "co_handling")
NO_DATA = "暂无数据（待退回/延期功能上线）"

DEFINITIONS: list[tuple[str, str]] = [
    ("受理量", "统计期内受理（登记）的案件数；承办单位按统计期内受理的、由其承办或共同承办的案件计。"),
    ("办结量", "统计期内办结答复企业的案件数（答复时间在统计期内）。"),
    ("办结率", "统计期内受理的案件中，截至统计期末已办结答复的比例 = 已办结的本期受理案件 ÷ 受理量。"),
    ("按时办结率", "统计期内办结的案件中，在办理时限内答复的比例 = 按时办结数 ÷ 办结量（期限到达前未答复即为超期）。"),
    ("超期未办结", "截至统计期末仍未办结答复、且期末前已因期限到达被催办/督办的案件数（期末在办的超期积压）。"),
    ("平均办理时长", "统计期内办结案件从受理次日到答复日的工作日数的平均值，按法定工作日历"
                 "（节假日、调休）计算，受理时由流程引擎的工作日历服务算出并记入台账。"),
    ("满意率", "统计期内的满意度评价中“满意”与“基本满意”之和所占比例 = (满意 + 基本满意) ÷ 评价数。"),
    ("回访率", "统计期内办结的案件中，已有满意度评价（回访评价或企业评价）记录的比例。"),
    ("回访规则", "磐安 PA-8：一般问题按 20% 抽样回访，疑难问题与投诉 100% 回访。按统计期内的抽样记录计："
             "一般问题实际回访数 ÷ 一般问题数 ≥ 20% 为达标；疑难、投诉类须全部回访为达标。尚未回访但仍在办的计为“待回访”。"),
    ("督办/催办", "统计期内期限到达时系统记录的催办、督办次数，以及督办人员对已超期案件的一键催办；"
              "合计按事件计一次，单位按被催办/督办的责任单位各计一次。"),
    ("问责", "统计期内因企业不满意发出的督查问责通报数（发往督办/作风办的问责通知）。"),
    ("延期率", NO_DATA),
    ("退回率", NO_DATA),
]


# --- periods ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """A stretch of Asia/Shanghai days: ``first`` to ``last`` inclusive, and its UTC bounds ``[start, end)``."""

    text: str
    label: str
    kind: str  # month | quarter | year | range
    first: date
    last: date

    @property
    def start(self) -> datetime:
        return to_utc(datetime(self.first.year, self.first.month, self.first.day, tzinfo=SHANGHAI))

    @property
    def end(self) -> datetime:
        nxt = self.last + timedelta(days=1)
        return to_utc(datetime(nxt.year, nxt.month, nxt.day, tzinfo=SHANGHAI))


def _month_end(year: int, month: int) -> date:
    return date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise QifuError(f"日期格式应为 YYYY-MM-DD：“{text}”") from None


def parse_period(text: str) -> Period:
    """``YYYY`` (a year), ``YYYY-Qn`` (a quarter), ``YYYY-MM`` (a month) or ``YYYY-MM-DD~YYYY-MM-DD``
    (years :data:`FIRST_YEAR` to :data:`LAST_YEAR`)."""
    period = _parse_period((text or "").strip()[:60])
    if not (FIRST_YEAR <= period.first.year and period.last.year <= LAST_YEAR):
        raise QifuError(f"统计期超出范围（{FIRST_YEAR}–{LAST_YEAR} 年）：“{period.text}”")
    return period


FIRST_YEAR, LAST_YEAR = 2000, 2100


def _year(text: str) -> int:
    year = int(text)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise QifuError(f"统计期超出范围（{FIRST_YEAR}–{LAST_YEAR} 年）：“{text}”")
    return year


def _parse_period(raw: str) -> Period:
    if m := re.fullmatch(r"(\d{4})", raw):
        year = _year(m.group(1))
        return Period(raw, f"{year}年", "year", date(year, 1, 1), date(year, 12, 31))
    if m := re.fullmatch(r"(\d{4})-?[Qq]([1-4])", raw):
        year, quarter = _year(m.group(1)), int(m.group(2))
        first = date(year, 3 * quarter - 2, 1)
        return Period(f"{year}-Q{quarter}", f"{year}年第{quarter}季度", "quarter", first,
                      _month_end(year, 3 * quarter))
    if m := re.fullmatch(r"(\d{4})-(\d{2})", raw):
        year, month = _year(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise QifuError(f"月份格式应为 YYYY-MM：“{raw}”")
        return Period(raw, f"{year}年{month}月", "month", date(year, month, 1), _month_end(year, month))
    if m := re.fullmatch(r"(\S+?)\s*(?:~|至|\.\.|/)\s*(\S+)", raw):
        first, last = _day(m.group(1)), _day(m.group(2))
        if last < first:
            raise QifuError(f"统计期的结束日期早于开始日期：“{raw}”")
        if (last - first).days > 366 * 5:
            raise QifuError("统计期不能超过五年")
        return Period(f"{first}~{last}", f"{first} 至 {last}", "range", first, last)
    raise QifuError(f"统计期格式应为 YYYY（年）、YYYY-Qn（季度）、YYYY-MM（月）或 YYYY-MM-DD~YYYY-MM-DD：“{raw}”")


def period_of(args: Any, default: str) -> Period:
    """The period a request asks for: ``period=…``, or ``from=…&to=…`` (dates), else ``default``."""
    start, stop = (args.get("from") or "").strip(), (args.get("to") or "").strip()
    if start or stop:
        if not (start and stop):
            raise QifuError("按日期统计须同时填写开始日期和结束日期")
        return parse_period(f"{start}~{stop}")
    return parse_period((args.get("period") or "").strip() or default)


# --- the figures --------------------------------------------------------------------------------------
@dataclass
class UnitKpi:
    unit: str
    unit_name: str
    received: int = 0
    received_answered: int = 0   # of those received in the period, answered by its end
    answered: int = 0
    answered_on_time: int = 0
    working_days_total: int = 0
    working_days_count: int = 0
    overdue_open: int = 0
    ratings: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    dissatisfied: int = 0
    answered_rated: int = 0      # of those answered in the period, with a rating
    reminders: int = 0           # 催办
    supervisions: int = 0        # 督办
    accountability: int = 0      # 问责通报

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    @property
    def completion_rate(self) -> float | None:
        return self._rate(self.received_answered, self.received)

    @property
    def on_time_rate(self) -> float | None:
        return self._rate(self.answered_on_time, self.answered)

    @property
    def average_working_days(self) -> float | None:
        return round(self.working_days_total / self.working_days_count, 2) if self.working_days_count else None

    @property
    def satisfaction_rate(self) -> float | None:
        return self._rate(self.satisfied + self.basically_satisfied, self.ratings)

    @property
    def revisit_rate(self) -> float | None:
        return self._rate(self.answered_rated, self.answered)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "completion_rate": self.completion_rate, "on_time_rate": self.on_time_rate,
                "average_working_days": self.average_working_days, "satisfaction_rate": self.satisfaction_rate,
                "revisit_rate": self.revisit_rate}


@dataclass
class RevisitRule:
    """One revisit rule of PA-8 over the period's draws: how many cases, how many revisited, met or not."""

    name: str
    kinds: tuple[str, ...]
    required: float           # the share that must be revisited
    cases: int = 0            # cases drawn for (sampled) in the period
    selected: int = 0         # drawn for a revisit
    revisited: int = 0        # with a rating after the draw
    pending: int = 0          # selected, not yet revisited, case still open

    @property
    def actual(self) -> float | None:
        return round(self.revisited / self.cases, 4) if self.cases else None

    @property
    def met(self) -> bool | None:
        """None without cases; else whether the revisited share reached the rule's."""
        if not self.cases:
            return None
        return self.revisited >= math.ceil(self.required * self.cases - 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kinds": list(self.kinds), "required": self.required, "cases": self.cases,
                "selected": self.selected, "revisited": self.revisited, "pending": self.pending,
                "actual": self.actual, "met": self.met}


@dataclass
class KpiReport:
    period: Period
    region: str | None
    rows: list[UnitKpi]
    total: UnitKpi
    revisit_rules: list[RevisitRule] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period.text, "label": self.period.label, "from": self.period.first.isoformat(),
                "to": self.period.last.isoformat(), "region": self.region,
                "rows": [r.to_dict() for r in self.rows], "total": self.total.to_dict(),
                "revisit_rules": [r.to_dict() for r in self.revisit_rules],
                "extension_rate": None, "return_rate": None, "no_data": NO_DATA}


def _within(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _attributed(cases: Any) -> Any:
    """``cases`` (a subquery with an ``id`` column) once per attributed unit, with a ``unit`` column: each
    unit that handled or co-handled the case, else its accepting unit."""
    ec, cu = EnterpriseCase, CaseUnit
    handled = (select(*cases.c, cu.unit_code.label("unit"))
               .join(cu, and_(cu.case_id == cases.c.id, cu.role.in_(HANDLING_ROLES))).distinct())
    own = (select(*cases.c, ec.unit.label("unit")).join(ec, ec.id == cases.c.id)
           .where(~exists(select(cu.id).where(cu.case_id == cases.c.id, cu.role.in_(HANDLING_ROLES)))))
    return union_all(handled, own).subquery()


def _both(session: Session, base: Any, aggregates: Any) -> tuple[tuple[Any, ...], dict[str, tuple[Any, ...]]]:
    """``aggregates(sub)`` over ``base``'s rows: once for the total, and per attributed unit."""
    sub = base.subquery()
    total = tuple(session.execute(select(*aggregates(sub)).select_from(sub)).one())
    per = _attributed(sub)
    rows = {unit: tuple(values) for unit, *values in
            session.execute(select(per.c.unit, *aggregates(per)).select_from(per).group_by(per.c.unit))}
    return total, rows


def _sum(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def kpis(session: Session, period: Period, region: str | None = None,
         where: ColumnElement[bool] | None = None) -> KpiReport:
    """Every KPI of :data:`DEFINITIONS` for ``period``, per unit and in total, within ``region`` and ``where``
    (the viewer's scope, :func:`web.scope.visible_cases`)."""
    ec = EnterpriseCase
    scope = [*([ec.region == region] if region else []), *([where] if where is not None else [])]
    end = period.end
    names = dict(session.execute(select(OrgUnit.code, OrgUnit.name)).all())
    rows: dict[str, UnitKpi] = {}
    total = UnitKpi("合计", "合计")

    def row(code: str) -> UnitKpi:
        return rows.setdefault(code, UnitKpi(code, names.get(code, code)))

    def put(names_: tuple[str, ...], values_total: tuple[Any, ...], per_unit: dict[str, tuple[Any, ...]]) -> None:
        for name, value in zip(names_, values_total, strict=True):
            setattr(total, name, int(value or 0))
        for code, values in per_unit.items():
            target = row(code)
            for name, value in zip(names_, values, strict=True):
                setattr(target, name, int(value or 0))

    # 受理量, and how many of them were answered by the period's end (办结率)
    received = select(ec.id, ec.answered_at).where(*scope, _within(ec.received_at, period))
    put(("received", "received_answered"), *_both(session, received, lambda s: (
        func.count(), _sum(s.c.answered_at < end))))
    # 办结量, 按时, 办理时长, 回访 (a rating recorded)
    rated = exists(select(Rating.id).where(Rating.case_id == ec.id)).label("rated")
    answered = select(ec.id, ec.answered_late, ec.answered_working_days, rated).where(
        *scope, _within(ec.answered_at, period))
    put(("answered", "answered_on_time", "working_days_total", "working_days_count", "answered_rated"),
        *_both(session, answered, lambda s: (
            func.count(), _sum(or_(s.c.answered_late.is_(False), s.c.answered_late.is_(None))),
            func.coalesce(func.sum(s.c.answered_working_days), 0), func.count(s.c.answered_working_days),
            _sum(s.c.rated))))
    # 超期未办结: open at the end, a deadline had passed before it (a supervision was recorded)
    # — two index ranges of ix_enterprise_case_answered (region, answered_at): the cases not answered yet (the
    # open backlog) and those answered after the period, not every case received before its end
    def backlog(answered: ColumnElement[bool]) -> Any:
        return select(ec.id).where(
            *scope, answered, ec.received_at < end, or_(ec.closed_at.is_(None), ec.closed_at >= end),
            exists(select(Supervision.id).where(Supervision.case_id == ec.id, Supervision.at < end)))

    overdue = union_all(backlog(ec.answered_at.is_(None)), backlog(ec.answered_at >= end))
    put(("overdue_open",), *_both(session, select(overdue.subquery().c.id), lambda s: (func.count(),)))
    # 满意率: the period's ratings
    ratings = (select(Rating.id.label("rating_id"), ec.id, Rating.value).join(ec, ec.id == Rating.case_id)
               .where(*scope, _within(Rating.at, period)))
    put(("ratings", "satisfied", "basically_satisfied", "dissatisfied"), *_both(session, ratings, lambda s: (
        func.count(), _sum(s.c.value == "满意"), _sum(s.c.value == "基本满意"), _sum(s.c.value == "不满意"))))
    # 督办/催办: events in total (one 督办 of a joint case names several units), per named unit
    sup = Supervision
    events = (select(sup.case_id, sup.at, sup.kind).join(ec, ec.id == sup.case_id)
              .where(*scope, _within(sup.at, period)).distinct().subquery())
    counted = session.execute(select(_sum(events.c.kind == "催办"), _sum(events.c.kind == "督办"))).one()
    total.reminders, total.supervisions = int(counted[0] or 0), int(counted[1] or 0)
    named = (select(sup.case_id, sup.at, sup.kind, sup.unit_code).join(ec, ec.id == sup.case_id)
             .where(*scope, _within(sup.at, period), sup.unit_code.is_not(None)).distinct().subquery())
    for code, reminders, supervisions in session.execute(
            select(named.c.unit_code, _sum(named.c.kind == "催办"), _sum(named.c.kind == "督办"))
            .group_by(named.c.unit_code)):
        target = row(code)
        target.reminders, target.supervisions = int(reminders or 0), int(supervisions or 0)
    # 问责: the accountability notices of the period, found through the cases rated 不满意 in it
    unhappy = select(Rating.case_id).where(_within(Rating.at, period), Rating.value == "不满意")
    notices = (select(Outbox.id.label("notice_id"), ec.id).join(ec, ec.instance_id == Outbox.instance_id)
               .where(*scope, ec.id.in_(unhappy), Outbox.template == "accountability",
                      _within(Outbox.created_at, period)))
    put(("accountability",), *_both(session, notices, lambda s: (func.count(),)))
    order = dict(session.execute(select(OrgUnit.code, OrgUnit.sort)).all())
    ordered = sorted(rows.values(), key=lambda r: (order.get(r.unit, 1_000_000), r.unit))
    return KpiReport(period, region, ordered, total, revisit_rules(session, period, scope))


def revisit_rules(session: Session, period: Period, scope: list[ColumnElement[bool]]) -> list[RevisitRule]:
    """PA-8 over the period's revisit draws: 一般问题 20 %, 疑难问题与投诉 100 %."""
    ec, draw = EnterpriseCase, RevisitDraw
    rules = [RevisitRule("一般问题（20%）", ("general",), 0.2), RevisitRule("疑难问题与投诉（100%）",
                                                                     ("difficult", "complaint"), 1.0)]
    rated = exists(select(Rating.id).where(Rating.case_id == draw.case_id, Rating.at >= draw.drawn_at))
    query = (select(draw.kind, func.count(func.distinct(draw.case_id)),
                    _sum(draw.selected.is_(True)), _sum(and_(draw.selected.is_(True), rated)),
                    _sum(and_(draw.selected.is_(True), ~rated, ec.closed_at.is_(None))))
             .join(ec, ec.id == draw.case_id).where(*scope, _within(draw.drawn_at, period)).group_by(draw.kind))
    for kind, cases, selected, revisited, pending in session.execute(query):
        for rule in rules:
            if kind in rule.kinds:
                rule.cases += int(cases or 0)
                rule.selected += int(selected or 0)
                rule.revisited += int(revisited or 0)
                rule.pending += int(pending or 0)
    return rules


# what the KPI table shows, column by column: (attribute, label, kind)
COLUMNS: list[tuple[str, str, str]] = [
    ("unit_name", "单位", "text"), ("received", "受理量", "number"), ("answered", "办结量", "number"),
    ("completion_rate", "办结率", "percent"), ("on_time_rate", "按时办结率", "percent"),
    ("overdue_open", "超期未办结", "number"), ("average_working_days", "平均办理时长（工作日）", "number"),
    ("ratings", "评价数", "number"), ("satisfaction_rate", "满意率", "percent"),
    ("revisit_rate", "回访率", "percent"), ("reminders", "催办", "number"), ("supervisions", "督办", "number"),
    ("accountability", "问责", "number"),
]


def shown(value: Any, kind: str) -> str:
    """A KPI as the page and the briefing print it."""
    if value is None:
        return "—"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    return str(value)


__all__ = ["COLUMNS", "DEFINITIONS", "KpiReport", "NO_DATA", "Period", "RevisitRule", "UnitKpi", "kpis",
           "parse_period", "period_of", "revisit_rules", "shown"]
