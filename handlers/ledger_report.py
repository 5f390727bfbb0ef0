"""Read-only queries over the ledger for supervisors: the supervision ledger (FH-8, PA-7), the office's
tracking and analysis view (PA-9) and the monthly briefing (FH-10); ``web.exports`` lays them out as .xlsx.

Everything is computed from the domain tables the handlers keep (``enterprise_case``, ``case_unit``,
``rating``, ``supervision``) plus the open ``human_task`` rows for deadlines and stages, so a page or an
export never unpacks workflow state. Months and days are Asia/Shanghai.

Attribution for the briefing: a case counts for every unit that handled or co-handled it (``case_unit``);
a case nobody was transferred to (answered by the centre or the station itself) counts for its accepting
unit. "Received" for a handling unit means *transferred to it* in the month.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from engine.calendar import WorkdayCalendar
from engine.clock import SHANGHAI, to_utc
from engine.errors import QifuError
from engine.models import HumanTask, Instance

from .models import LEDGER_STATUS_NAMES, CaseUnit, EnterpriseCase, OrgUnit, Rating, Supervision


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


def ledger(session: Session, *, region: str | None = None, status: str | None = None, unit: str | None = None,
           now: datetime | None = None, where: ColumnElement[bool] | None = None) -> list[LedgerRow]:
    """Every case of the ledger, newest first, with its deadline and whether it is overdue at ``now``.

    ``where`` narrows the cases to those a viewer may see (a condition on ``enterprise_case``, see web.scope).
    """
    query = (select(EnterpriseCase, Instance.status).join(Instance, Instance.id == EnterpriseCase.instance_id)
             .order_by(EnterpriseCase.received_at.desc(), EnterpriseCase.id.desc()))
    if where is not None:
        query = query.where(where)
    if region:
        query = query.where(EnterpriseCase.region == region)
    if status:
        query = query.where(EnterpriseCase.ledger_status == status)
    if unit:
        involved = select(CaseUnit.case_id).where(CaseUnit.unit_code == unit)
        query = query.where((EnterpriseCase.unit == unit) | EnterpriseCase.id.in_(involved))
    rows = session.execute(query).all()
    ids = [case.instance_id for case, _ in rows]
    open_tasks: dict[int, list[HumanTask]] = defaultdict(list)
    if ids:
        for task in session.scalars(select(HumanTask).where(HumanTask.instance_id.in_(ids)).order_by(HumanTask.id)):
            open_tasks[task.instance_id].append(task)
    names = dict(session.execute(select(OrgUnit.code, OrgUnit.name)).all())
    out = []
    for case, case_status in rows:
        tasks = open_tasks.get(case.instance_id, [])
        dues = [to_utc(t.due_at) for t in tasks if t.due_at is not None]
        deadline = min(dues) if dues else None
        overdue = bool(case.overdue) or (now is not None and deadline is not None and deadline < now)
        out.append(LedgerRow(
            case.business_key, case.region, case.unit, names.get(case.unit, case.unit), case.enterprise_name,
            case.title, case.category, case.channel, case.received_at, case.ledger_status,
            LEDGER_STATUS_NAMES.get(case.ledger_status, case.ledger_status), overdue, case.handling_unit, deadline,
            "、".join(t.name or t.spec_id for t in tasks) or None, case.answered_at, case.answered_late,
            case.closed_at, case.satisfaction, case_status))
    return out


def ledger_counts(session: Session, region: str | None = None,
                  where: ColumnElement[bool] | None = None) -> dict[str, int]:
    """Cases per ledger status (``closed`` = 销账, ``carried`` = 挂账), plus ``overdue`` and ``total``."""
    query = select(EnterpriseCase.ledger_status, func.count(EnterpriseCase.id)).group_by(EnterpriseCase.ledger_status)
    overdue = select(func.count(EnterpriseCase.id)).where(EnterpriseCase.overdue.is_(True))
    if where is not None:
        query, overdue = query.where(where), overdue.where(where)
    if region:
        query = query.where(EnterpriseCase.region == region)
        overdue = overdue.where(EnterpriseCase.region == region)
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
    by_stage: dict[str, int] = field(default_factory=dict)
    answered: int = 0
    average_working_days: float | None = None  # receipt → answer, answered cases


def tracking(session: Session, calendar: WorkdayCalendar, *, region: str | None = None,
             now: datetime | None = None, where: ColumnElement[bool] | None = None) -> list[UnitTracking]:
    """Open cases per accepting station and stage, overdue ones, and the average handling time in working
    days (receipt to answer) — the office's 跟踪督办 and 运行数据分析 view."""
    per_unit: dict[str, UnitTracking] = {}
    names = dict(session.execute(select(OrgUnit.code, OrgUnit.name)).all())
    spans: dict[str, list[int]] = defaultdict(list)
    for row in ledger(session, region=region, now=now, where=where):
        item = per_unit.setdefault(row.unit, UnitTracking(row.unit, names.get(row.unit, row.unit)))
        if row.case_status == "running" and row.ledger_status != "closed":
            item.open += 1
            item.overdue += row.overdue
            stage = row.stage or "（无待办）"
            item.by_stage[stage] = item.by_stage.get(stage, 0) + 1
        if row.answered_at is not None:
            start = to_utc(row.received_at).astimezone(SHANGHAI).date()
            end = to_utc(row.answered_at).astimezone(SHANGHAI).date()
            spans[row.unit].append(calendar.working_days_between(start, end))
    for code, values in spans.items():
        per_unit[code].answered = len(values)
        per_unit[code].average_working_days = round(sum(values) / len(values), 2)
    order = dict(session.execute(select(OrgUnit.code, OrgUnit.sort)).all())
    return sorted(per_unit.values(), key=lambda u: (order.get(u.unit, 1_000_000), u.unit))


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


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` month in Asia/Shanghai, as UTC instants."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise QifuError(f"月份格式应为 YYYY-MM：“{month}”")
    year, mon = int(match.group(1)), int(match.group(2))
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    start = datetime(year, mon, 1, tzinfo=SHANGHAI)
    end = datetime(nxt.year, nxt.month, 1, tzinfo=SHANGHAI)
    return to_utc(start), to_utc(end)


def briefing(session: Session, month: str, region: str | None = None,
             where: ColumnElement[bool] | None = None) -> Briefing:
    """Per unit: received, answered on time / late, carried at month end, supervisions and ratings."""
    start, end = month_bounds(month)

    def within(value: datetime | None) -> bool:
        return value is not None and start <= to_utc(value) < end

    query = select(EnterpriseCase)
    if region:
        query = query.where(EnterpriseCase.region == region)
    if where is not None:
        query = query.where(where)
    cases = list(session.scalars(query.where(EnterpriseCase.received_at < end)))
    ids = [c.id for c in cases]
    involved: dict[int, list[CaseUnit]] = defaultdict(list)
    ratings: dict[int, list[Rating]] = defaultdict(list)      # up to the month's end
    supervisions: dict[int, list[Supervision]] = defaultdict(list)
    if ids:
        for cu in session.scalars(select(CaseUnit).where(CaseUnit.case_id.in_(ids),
                                                         CaseUnit.role.in_(("handling", "co_handling")))):
            involved[cu.case_id].append(cu)
        for rating in session.scalars(select(Rating).where(Rating.case_id.in_(ids), Rating.at < end)
                                      .order_by(Rating.at, Rating.id)):
            ratings[rating.case_id].append(rating)
        for sup in session.scalars(select(Supervision).where(Supervision.case_id.in_(ids), Supervision.at < end)):
            supervisions[sup.case_id].append(sup)
    names = dict(session.execute(select(OrgUnit.code, OrgUnit.name)).all())
    order = dict(session.execute(select(OrgUnit.code, OrgUnit.sort)).all())
    rows: dict[str, BriefingRow] = {}
    total = BriefingRow("合计", "合计")

    def row(code: str) -> BriefingRow:
        return rows.setdefault(code, BriefingRow(code, names.get(code, code)))

    for case in cases:
        units = involved.get(case.id)
        # once per unit, from its first transfer: a station that handles and co-handles (Pan'an's agency
        # panel with the station's own panels) or a unit given the case again after 不满意 counts it once
        first: dict[str, datetime] = {}
        for cu in sorted(units or [], key=lambda cu: (to_utc(cu.at), cu.id)):
            first.setdefault(cu.unit_code, cu.at)
        attributions = list(first.items()) if units else [(case.unit, case.received_at)]
        # 挂账 at the month's end, as it stood then: not closed by then, and a deadline had passed
        # (a supervision was recorded) or the latest rating so far was 不满意
        closed_by_end = case.closed_at is not None and to_utc(case.closed_at) < end
        past = ratings.get(case.id, [])
        carried = not closed_by_end and (bool(supervisions.get(case.id)) or (bool(past)
                                                                            and past[-1].value == "不满意"))
        total.received += within(case.received_at)
        for code, since in [*attributions, (None, None)]:
            r = total if code is None else row(code)  # the total counts each case once
            if code is not None:
                r.received += within(since)
            if within(case.answered_at):
                if case.answered_late:
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
        for sup in supervisions.get(case.id, []):
            if within(sup.at):
                events.add((sup.at, sup.kind))  # one 督办 of a joint case names several units: once in the total
                if sup.unit_code:
                    per_unit.add((sup.at, sup.kind, sup.unit_code))
        for _at, _kind, code in per_unit:
            row(code).supervised += 1
        total.supervised += len(events)
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
        values = [_cell(r, name) for name, _ in COLUMNS[1:]]
        lines.append("  ".join("-" if v is None else (f"{v:.1%}" if isinstance(v, float) else str(v)) for v in values))
    return "\n".join(lines)


def _cell(r: BriefingRow, name: str) -> Any:
    return getattr(r, name)

