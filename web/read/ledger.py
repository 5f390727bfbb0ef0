"""The supervisors' read model over the ledger: the supervision ledger (FH-8, PA-7), the office's tracking
view (PA-9) and the monthly briefing (FH-10).

Everything comes from the domain tables the handlers keep (``enterprise_case``, ``case_unit``, ``rating``,
``supervision``) joined with the engine's read models of instances and open tasks (``runtime.view()``,
``tasks.view()``): counting, filtering and paging happen in the database, so a page costs the same in a
centre's first month and in its tenth year. Months and days are Asia/Shanghai.

Attribution for the briefing: a case counts for every unit that handled or co-handled it (``case_unit``);
a case nobody was transferred to (answered by the centre or the station itself) counts for its accepting
unit. "Received" for a handling unit means *transferred to it* in the month. The briefing reads only the
cases the month touched (received, answered, rated or supervised in it, or still carried at its end).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    and_,
    any_,
    case,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI, to_utc
from engine.errors import QifuError
from engine.process_engine import ProcessEngine
from handlers.models import LEDGER_STATUS_NAMES, CaseUnit, EnterpriseCase, OrgUnit, Rating, Supervision

EXPORT_BATCH = 500


# --- the supervision ledger (FH-8 / PA-7) -------------------------------------------------------------
@dataclass
class LedgerRow:
    business_key: str
    region: str
    unit: str
    unit_name: str
    enterprise_name: str
    title: str | None
    category: str | None
    channel: str | None
    received_at: datetime
    ledger_status: str
    status_name: str
    overdue: bool             # flagged by supervise, or an open task is past its deadline now
    handling_unit: str | None
    deadline: datetime | None  # earliest due instant of the case's open tasks
    stage: str | None          # names of the open tasks
    answered_at: datetime | None
    answered_late: bool | None
    closed_at: datetime | None
    satisfaction: str | None
    case_status: str           # the instance: running | completed | cancelled


@dataclass(frozen=True)
class LedgerQuery:
    """Which ledger rows: ``where`` (the viewer's scope, web.scope), a region, a status, a unit (accepting or
    involved), a month of receipt, only the overdue ones."""

    where: Any = None
    region: str | None = None
    status: str | None = None
    unit: str | None = None
    month: str | None = None
    overdue: bool = False


@dataclass
class LedgerPage:
    rows: list[LedgerRow]
    page: int
    pages: int
    total: int


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` month in Asia/Shanghai, as UTC instants."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise QifuError(f"月份格式应为 YYYY-MM：“{month}”")
    if not 2000 <= int(match.group(1)) <= 2100:
        raise QifuError(f"月份超出范围（2000–2100 年）：“{month}”")
    year, mon = int(match.group(1)), int(match.group(2))
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    start = datetime(year, mon, 1, tzinfo=SHANGHAI)
    end = datetime(nxt.year, nxt.month, 1, tzinfo=SHANGHAI)
    return to_utc(start), to_utc(end)


def _conditions(engine: ProcessEngine, q: LedgerQuery, instances: Any, now: datetime) -> list[ColumnElement[bool]]:
    ec = EnterpriseCase
    out: list[ColumnElement[bool]] = []
    if q.where is not None:
        out.append(q.where)
    if q.region:
        out.append(ec.region == q.region)
    if q.status:
        out.append(ec.ledger_status == q.status)
    if q.unit:
        involved = select(CaseUnit.case_id).where(CaseUnit.unit_code == q.unit)
        out.append((ec.unit == q.unit) | ec.id.in_(involved))
    if q.month:
        start, end = month_bounds(q.month)
        out.append(and_(ec.received_at >= start, ec.received_at < end))
    if q.overdue:
        out.append(ec.overdue.is_(True) | (instances.c.due_at < now))
    return out


def _ledger_select(engine: ProcessEngine, q: LedgerQuery, now: datetime) -> tuple[Any, Any]:
    instances = engine.runtime.view()
    base = (select(EnterpriseCase, instances.c.status, instances.c.due_at)
            .join(instances, instances.c.id == EnterpriseCase.instance_id)
            .where(*_conditions(engine, q, instances, now)))
    return base, instances


def _matching_ids(engine: ProcessEngine, q: LedgerQuery, now: datetime) -> Any:
    """The ids of the ledger rows ``q`` selects, as a query that reads indexes only: the instance (status,
    earliest deadline) is joined only when a filter needs it — every case has one, so the count is the same."""
    instances = engine.runtime.view()
    ids = select(EnterpriseCase.id)
    if q.overdue:
        ids = ids.join(instances, instances.c.id == EnterpriseCase.instance_id)
    return ids.where(*_conditions(engine, q, instances, now))


def _newest_first(query: Any) -> Any:
    return query.order_by(EnterpriseCase.received_at.desc(), EnterpriseCase.id.desc())


def _page_rows(engine: ProcessEngine, session: Session, ids: list[int], now: datetime) -> list[Any]:
    """(ledger row, instance status, earliest deadline) of a page's ids, in the page's order."""
    if not ids:
        return []
    instances = engine.runtime.view()
    found = {row[0].id: row for row in session.execute(
        select(EnterpriseCase, instances.c.status, instances.c.due_at)
        .join(instances, instances.c.id == EnterpriseCase.instance_id).where(EnterpriseCase.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def ledger_page(engine: ProcessEngine, session: Session, q: LedgerQuery, *, now: datetime, page: int = 1,
                page_size: int = 50) -> LedgerPage:
    """One page of the ledger, newest first, with the number of cases in all.

    The count and the page's ids come from the indexes (``region, received_at, unit`` in that order, so even a
    late page skips its offset without reading rows); only the page's 50 rows are then read in full."""
    matching = _matching_ids(engine, q, now)
    total = session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    ids = list(session.scalars(_newest_first(matching).limit(page_size).offset((page - 1) * page_size)))
    return LedgerPage(_rows(engine, session, _page_rows(engine, session, ids, now), now), page, pages, total)


def ledger_rows(engine: ProcessEngine, session: Session, q: LedgerQuery, *, now: datetime) -> Iterator[LedgerRow]:
    """Every row of the ledger, newest first, read in batches (an export streams them)."""
    base, _ = _ledger_select(engine, q, now)
    ordered = _newest_first(base)
    result = session.execute(ordered.execution_options(yield_per=EXPORT_BATCH))
    for batch in result.partitions(EXPORT_BATCH):
        yield from _rows(engine, session, batch, now)


def _rows(engine: ProcessEngine, session: Session, rows: Any, now: datetime | None) -> list[LedgerRow]:
    open_tasks = engine.tasks.of_instances([case.instance_id for case, _, _ in rows])
    names = _unit_names(session)
    out = []
    for case_row, case_status, due_at in rows:
        tasks = open_tasks.get(case_row.instance_id, [])
        overdue = bool(case_row.overdue) or (now is not None and due_at is not None and due_at < now)
        out.append(LedgerRow(
            case_row.business_key, case_row.region, case_row.unit, names.get(case_row.unit, case_row.unit),
            case_row.enterprise_name, case_row.title, case_row.category, case_row.channel, case_row.received_at,
            case_row.ledger_status, LEDGER_STATUS_NAMES.get(case_row.ledger_status, case_row.ledger_status), overdue,
            case_row.handling_unit, due_at, "、".join(t.name or t.spec_id for t in tasks) or None,
            case_row.answered_at, case_row.answered_late, case_row.closed_at, case_row.satisfaction, case_status))
    return out


def _unit_names(session: Session) -> dict[str, str]:
    return dict(session.execute(select(OrgUnit.code, OrgUnit.name)).all())


def ledger_counts(session: Session, region: str | None = None,
                  where: ColumnElement[bool] | None = None) -> dict[str, int]:
    """Cases per ledger status (``closed`` = 销账, ``carried`` = 挂账), plus ``overdue`` and ``total``."""
    query = select(EnterpriseCase.ledger_status, func.count(EnterpriseCase.id)).group_by(EnterpriseCase.ledger_status)
    overdue = select(func.count(EnterpriseCase.id)).where(EnterpriseCase.overdue.is_(True))
    for condition in ([EnterpriseCase.region == region] if region else []) + ([where] if where is not None else []):
        query, overdue = query.where(condition), overdue.where(condition)
    counts = {status: 0 for status in LEDGER_STATUS_NAMES}
    counts.update(dict(session.execute(query).all()))
    counts["overdue"] = session.scalar(overdue) or 0
    counts["total"] = sum(counts[s] for s in LEDGER_STATUS_NAMES)
    return counts


# --- tracking and analysis (PA-9) ---------------------------------------------------------------------
@dataclass
class UnitTracking:
    unit: str
    unit_name: str
    open: int = 0
    overdue: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)  # open task name → cases waiting there
    answered: int = 0
    average_working_days: float | None = None  # receipt → answer, answered cases


def _open_cases(engine: ProcessEngine, instances: Any) -> ColumnElement[bool]:
    return and_(instances.c.status == "running", EnterpriseCase.ledger_status != "closed")


def tracking(engine: ProcessEngine, session: Session, *, region: str | None = None, now: datetime,
             where: ColumnElement[bool] | None = None) -> list[UnitTracking]:
    """Per accepting station/unit: open cases, overdue ones, cases per open task, and the average handling time
    in working days (receipt to answer) — the office's 跟踪督办 and 运行数据分析 view, all grouped in SQL."""
    instances = engine.runtime.view()
    ec = EnterpriseCase
    scope = [c for c in ([ec.region == region] if region else []) + ([where] if where is not None else [])]
    joined = select(ec.unit).join(instances, instances.c.id == ec.instance_id).where(*scope)
    late = ec.overdue.is_(True) | (instances.c.due_at < now)
    per_unit: dict[str, UnitTracking] = {}
    names = _unit_names(session)

    def row(code: str) -> UnitTracking:
        return per_unit.setdefault(code, UnitTracking(code, names.get(code, code)))

    tasks = engine.tasks.view()
    # one pass over the open cases for three counts: open, late, and without an open task (``instance_id``
    # only in the test, so that it reads the index on it, never a task row)
    idle = ~exists(select(tasks.c.instance_id).where(tasks.c.instance_id == ec.instance_id))
    opened = joined.add_columns(func.count(), func.sum(case((late, 1), else_=0)), func.sum(case((idle, 1), else_=0))) \
        .where(_open_cases(engine, instances)).group_by(ec.unit)
    waiting: dict[str, int] = {}
    for unit, count, overdue, without_task in session.execute(opened):
        item = row(unit)
        item.open, item.overdue = count, int(overdue or 0)
        if without_task:
            waiting[unit] = int(without_task)
    stages = (select(ec.unit, tasks.c.name, func.count(func.distinct(ec.id)))
              .join(instances, instances.c.id == ec.instance_id).join(tasks, tasks.c.instance_id == ec.instance_id)
              .where(*scope, _open_cases(engine, instances)).group_by(ec.unit, tasks.c.name))
    for unit, name, count in session.execute(stages):
        row(unit).by_stage[name or "（未命名环节）"] = count
    answered = (select(ec.unit, func.count(), func.avg(ec.answered_working_days)).where(
        *scope, ec.answered_working_days.is_not(None)).group_by(ec.unit))
    for unit, count, average in session.execute(answered):
        item = row(unit)
        item.answered, item.average_working_days = count, round(float(average), 2)
    for unit, count in waiting.items():
        row(unit).by_stage["（无待办）"] = count
    order = dict(session.execute(select(OrgUnit.code, OrgUnit.sort)).all())
    return sorted(per_unit.values(), key=lambda u: (order.get(u.unit, 1_000_000), u.unit))


def open_cases_page(engine: ProcessEngine, session: Session, *, region: str | None, now: datetime,
                    where: ColumnElement[bool] | None = None, page: int = 1, page_size: int = 50,
                    total: int | None = None) -> LedgerPage:
    """The cases still open, overdue first, then by their earliest deadline (the tracking board's list).

    ``total``: how many there are, when the caller has counted them already (the board: the sum of
    :func:`tracking`'s ``open`` over the same region and scope), so that they are not counted twice.

    The count and the page's order come from ``ix_enterprise_case_region_open`` and ``ix_instance_open`` (every
    column they read is there); only the page's rows are then read in full."""
    instances = engine.runtime.view()
    ec = EnterpriseCase
    late = ec.overdue.is_(True) | (instances.c.due_at < now)
    matching = (select(ec.id).join(instances, instances.c.id == ec.instance_id)
                .where(*([ec.region == region] if region else []), *([where] if where is not None else []),
                       _open_cases(engine, instances)))
    if total is None:
        total = session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    ids = list(session.scalars(matching.order_by(case((late, 0), else_=1), instances.c.due_at.is_(None),
                                                  instances.c.due_at, ec.business_key)
                               .limit(page_size).offset((page - 1) * page_size)))
    return LedgerPage(_rows(engine, session, _page_rows(engine, session, ids, now), now), page, pages, total)


# --- the monthly briefing (FH-10) ---------------------------------------------------------------------
@dataclass
class BriefingRow:
    unit: str
    unit_name: str
    received: int = 0
    answered_on_time: int = 0
    answered_late: int = 0
    carried: int = 0
    supervised: int = 0
    satisfied: int = 0        # 满意
    basically_satisfied: int = 0  # 基本满意
    dissatisfied: int = 0     # 不满意

    @property
    def ratings(self) -> int:
        return self.satisfied + self.basically_satisfied + self.dissatisfied

    @property
    def satisfaction_rate(self) -> float | None:
        """(满意 + 基本满意) / ratings of the month, None without ratings."""
        return round((self.satisfied + self.basically_satisfied) / self.ratings, 4) if self.ratings else None

    @property
    def on_time_rate(self) -> float | None:
        answered = self.answered_on_time + self.answered_late
        return round(self.answered_on_time / answered, 4) if answered else None


@dataclass
class Briefing:
    month: str
    region: str | None
    start: datetime
    end: datetime
    rows: list[BriefingRow]
    total: BriefingRow

    def to_dict(self) -> dict[str, Any]:
        def row(r: BriefingRow) -> dict[str, Any]:
            return {**asdict(r), "satisfaction_rate": r.satisfaction_rate, "on_time_rate": r.on_time_rate}

        return {"month": self.month, "region": self.region, "rows": [row(r) for r in self.rows],
                "total": row(self.total)}


def _within(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _touched_in(start: datetime, end: datetime, scope: list[ColumnElement[bool]]) -> Any:
    """The cases the month itself touched: received, answered, rated, supervised or transferred in it.

    One part per reason, each found by its own index (receipt, answer, the rating's, supervision's and
    transfer's time), united: no case is tested against all of them."""
    ec = EnterpriseCase

    def cases(*conditions: Any) -> Any:
        return select(ec.id).where(*scope, *conditions)

    return union(
        cases(_within(ec.received_at, start, end)), cases(_within(ec.answered_at, start, end)),
        cases(ec.id.in_(select(Rating.case_id).where(_within(Rating.at, start, end)))),
        cases(ec.id.in_(select(Supervision.case_id).where(_within(Supervision.at, start, end)))),
        cases(ec.id.in_(select(CaseUnit.case_id).where(_within(CaseUnit.at, start, end)))))


_HANDLING = ("handling", "co_handling")


def _carried_only(session: Session, end: datetime, scope: list[ColumnElement[bool]], touched: list[int],
                  dialect: str) -> tuple[int, dict[str, int]]:
    """挂账 at the month's end of the cases the month did not otherwise touch — the backlog, which adds only
    to the carried column — counted in SQL: (cases, cases per attributed unit). The rule is the one the
    briefing applies case by case: not closed by the end, received before it, and a supervision before the
    end or the latest rating before it 不满意; counted for each unit that handled or co-handled the case, or
    for its accepting unit when none did."""
    ec = EnterpriseCase
    supervised = exists(select(Supervision.id).where(Supervision.case_id == ec.id, Supervision.at < end))
    latest = (select(Rating.value).where(Rating.case_id == ec.id, Rating.at < end)
              .order_by(Rating.at.desc(), Rating.id.desc()).limit(1).scalar_subquery())
    # One statement, the counting in SQL: the carried cases (a CTE, read once), then each attributed to the
    # units that handled or co-handled it (once per unit) or, when none did, to its accepting unit.
    carried = select(ec.id, ec.unit).where(
        *scope, or_(ec.closed_at.is_(None), ec.closed_at >= end), ec.received_at < end,
        or_(supervised, latest == "不满意"), ~_among(ec.id, touched, dialect)).cte("carried")
    handling = CaseUnit.role.in_(_HANDLING)
    attributed = union(
        select(CaseUnit.case_id, CaseUnit.unit_code.label("code"))
        .where(CaseUnit.case_id.in_(select(carried.c.id)), handling),
        select(carried.c.id, carried.c.unit).where(
            ~exists(select(CaseUnit.case_id).where(CaseUnit.case_id == carried.c.id, handling)))).subquery()
    counted = union_all(
        select(literal_column("1").label("kind"), attributed.c.code, func.count()).group_by(attributed.c.code),
        select(literal_column("0"), literal_column("NULL"), func.count()).select_from(carried))
    total, per_unit = 0, {}
    for kind, code, count in session.execute(counted):
        if kind:
            per_unit[code] = count
        else:
            total = count
    return total, per_unit


def _among(column: Any, ids: list[int], dialect: str) -> ColumnElement[bool]:
    """``column`` is one of ``ids``, sent as ONE bind parameter however many there are (a JSON array on
    SQLite, read by ``json_each``; an integer array on PostgreSQL): no statement grows with the data."""
    if dialect == "postgresql":
        return column == any_(cast(ids, ARRAY(Integer)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(json.dumps(ids))))


class _Case(NamedTuple):  # a tuple: built per row, ten times cheaper than a frozen dataclass
    id: int
    unit: str
    received_at: datetime
    answered_at: datetime | None
    answered_late: bool | None
    closed_at: datetime | None


class _Involved(NamedTuple):
    id: int
    case_id: int
    unit_code: str
    at: datetime


class _Rated(NamedTuple):
    case_id: int
    value: str
    at: datetime


class _Supervised(NamedTuple):
    case_id: int
    kind: str
    unit_code: str | None
    at: datetime


def briefing(session: Session, month: str, region: str | None = None,
             where: ColumnElement[bool] | None = None) -> Briefing:
    """Per unit: received, answered on time / late, carried at month end, supervisions and ratings.

    Reads the columns it counts (plain rows, no ledger objects) of the cases the month touched."""
    start, end = month_bounds(month)

    def within(value: datetime | None) -> bool:  # the columns read back aware (UTCDateTime): compared as they are
        return value is not None and start <= (value if value.tzinfo else to_utc(value)) < end

    ec = EnterpriseCase
    scope = [*([ec.region == region] if region else []), *([where] if where is not None else [])]
    touched = _touched_in(start, end, scope).subquery()
    cases = [_Case(*r) for r in session.execute(
        select(ec.id, ec.unit, ec.received_at, ec.answered_at, ec.answered_late, ec.closed_at)
        .where(ec.id.in_(select(touched.c[0]))).order_by(ec.id))]
    ids = [c.id for c in cases]
    dialect = session.get_bind().dialect.name
    backlog, backlog_per_unit = _carried_only(session, end, scope, ids, dialect)
    involved: dict[int, list[_Involved]] = defaultdict(list)
    ratings: dict[int, list[_Rated]] = defaultdict(list)      # up to the month's end
    supervisions: dict[int, list[_Supervised]] = defaultdict(list)
    for cu in session.execute(select(CaseUnit.id, CaseUnit.case_id, CaseUnit.unit_code, CaseUnit.at)
                              .where(_among(CaseUnit.case_id, ids, dialect),
                                     CaseUnit.role.in_(("handling", "co_handling")))):
        involved[cu.case_id].append(_Involved(*cu))
    for rating in session.execute(select(Rating.case_id, Rating.value, Rating.at)
                                  .where(_among(Rating.case_id, ids, dialect), Rating.at < end)
                                  .order_by(Rating.at, Rating.id)):
        ratings[rating.case_id].append(_Rated(*rating))
    for sup in session.execute(select(Supervision.case_id, Supervision.kind, Supervision.unit_code, Supervision.at)
                               .where(_among(Supervision.case_id, ids, dialect), Supervision.at < end)):
        supervisions[sup.case_id].append(_Supervised(*sup))
    names = _unit_names(session)
    order = dict(session.execute(select(OrgUnit.code, OrgUnit.sort)).all())
    rows: dict[str, BriefingRow] = {}
    total = BriefingRow("合计", "合计")

    def row(code: str) -> BriefingRow:
        return rows.setdefault(code, BriefingRow(code, names.get(code, code)))

    for case_row in cases:
        units = involved.get(case_row.id)
        # once per unit, from its first transfer: a station that handles and co-handles (Pan'an's agency
        # panel with the station's own panels) or a unit given the case again after 不满意 counts it once
        first: dict[str, datetime] = {}
        for cu in sorted(units or [], key=lambda cu: (cu.at if cu.at.tzinfo else to_utc(cu.at), cu.id)):
            first.setdefault(cu.unit_code, cu.at)
        attributions = list(first.items()) if units else [(case_row.unit, case_row.received_at)]
        # 挂账 at the month's end, as it stood then: not closed by then, and a deadline had passed
        # (a supervision was recorded) or the latest rating so far was 不满意
        closed_by_end = case_row.closed_at is not None and to_utc(case_row.closed_at) < end
        past = ratings.get(case_row.id, [])
        carried = not closed_by_end and (bool(supervisions.get(case_row.id)) or (bool(past)
                                                                                and past[-1].value == "不满意"))
        total.received += within(case_row.received_at)
        for code, since in [*attributions, (None, None)]:
            r = total if code is None else row(code)  # the total counts each case once
            if code is not None:
                r.received += within(since)
            if within(case_row.answered_at):
                if case_row.answered_late:
                    r.answered_late += 1
                else:
                    r.answered_on_time += 1
            r.carried += carried
            for rating in past:
                if within(rating.at):
                    r.satisfied += rating.value == "满意"
                    r.basically_satisfied += rating.value == "基本满意"
                    r.dissatisfied += rating.value == "不满意"
        events = set()
        per_unit = set()  # a station that handles and co-handles is named twice by one 督办: count it once
        for sup in supervisions.get(case_row.id, []):
            if within(sup.at):
                events.add((sup.at, sup.kind))  # one 督办 of a joint case names several units: once in the total
                if sup.unit_code:
                    per_unit.add((sup.at, sup.kind, sup.unit_code))
        for _at, _kind, code in per_unit:
            row(code).supervised += 1
        total.supervised += len(events)
    total.carried += backlog
    for code, count in backlog_per_unit.items():
        row(code).carried += count
    ordered = sorted(rows.values(), key=lambda r: (order.get(r.unit, 1_000_000), r.unit))
    ordered = [r for r in ordered if any((r.received, r.answered_on_time, r.answered_late, r.carried,
                                          r.supervised, r.ratings))]
    return Briefing(month, region, start, end, ordered, total)


COLUMNS = [("unit", "单位编码"), ("unit_name", "单位"), ("received", "受理/交办"), ("answered_on_time", "按时答复"),
           ("answered_late", "超期答复"), ("carried", "挂账"), ("supervised", "督办/催办"), ("satisfied", "满意"),
           ("basically_satisfied", "基本满意"), ("dissatisfied", "不满意"), ("satisfaction_rate", "满意率"),
           ("on_time_rate", "按时答复率")]
REGION_NAMES = {"pan_an": "磐安县", "fenghua": "奉化区", None: ""}


def briefing_text(report: Briefing) -> str:
    """The briefing as plain text (CLI, e-mail body)."""
    lines = [f"{REGION_NAMES.get(report.region, report.region)}服务企业情况简报 {report.month}",
             "  ".join(label for _, label in COLUMNS[1:])]
    for r in [*report.rows, report.total]:
        values = [getattr(r, name) for name, _ in COLUMNS[1:]]
        lines.append("  ".join("-" if v is None else (f"{v:.1%}" if isinstance(v, float) else str(v)) for v in values))
    return "\n".join(lines)
