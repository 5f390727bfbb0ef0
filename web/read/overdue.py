"""The overdue board (超期预警, FH-7 跟踪催办, PA-9 跟踪督办): open cases near or past a deadline.

"Near" is a deadline before the end of the next working day (the inbox's yellow light), "past" a deadline
already gone or a case the deadline timer flagged (``overdue``). Counts per accepting station/unit and per
responsible unit are grouped in SQL; the list is paged by the instance's earliest deadline
(``ix_instance_open``), and only the page's rows are read in full. Days overdue are working days of the
engine's calendar (:class:`engine.calendar.WorkdayCalendar`), from the deadline's day to today.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI
from engine.process_engine import ProcessEngine
from handlers.models import CaseUnit, EnterpriseCase, OrgUnit

HANDLING_ROLES = ("handling", "co_handling")


@dataclass
class OverdueRow:
    business_key: str
    instance_id: int
    unit: str
    unit_name: str
    enterprise_name: str
    title: str | None
    responsible: list[str]          # codes of the units answerable now (latest transfer / joint review)
    responsible_names: list[str]
    deadline: datetime | None
    overdue: bool
    working_days_overdue: int | None  # > 0: past by that many working days; <= 0: due today / tomorrow
    ledger_status: str


@dataclass
class OverdueCount:
    unit: str
    unit_name: str
    overdue: int = 0
    near: int = 0


@dataclass
class OverdueBoard:
    rows: list[OverdueRow]
    page: int
    pages: int
    total: int
    overdue: int
    near: int
    by_station: list[OverdueCount]
    by_responsible: list[OverdueCount]


def _names(session: Session) -> tuple[dict[str, str], dict[str, int]]:
    found = session.execute(select(OrgUnit.code, OrgUnit.name, OrgUnit.sort)).all()
    return {c: n for c, n, _ in found}, {c: s for c, _, s in found}


def overdue_board(engine: ProcessEngine, session: Session, *, region: str | None, now: datetime,
                  where: ColumnElement[bool] | None = None, page: int = 1, page_size: int = 50) -> OverdueBoard:
    """The board: cases open with a deadline before the end of the next working day, or flagged overdue."""
    cal = engine.calendar.snapshot()
    today = now.astimezone(SHANGHAI).date()
    soon = cal.end_of(cal.add_working_days(today, 1))
    instances = engine.runtime.view()
    ec = EnterpriseCase
    late = ec.overdue.is_(True) | (instances.c.due_at < now)
    scope = [*([ec.region == region] if region else []), *([where] if where is not None else [])]
    matching = (select(ec.id).join(instances, instances.c.id == ec.instance_id)
                .where(*scope, instances.c.status == "running", ec.ledger_status != "closed",
                       late | (instances.c.due_at < soon)))
    names, order = _names(session)

    def grouped(column: Any) -> list[OverdueCount]:
        query = (select(column, func.sum(case((late, 1), else_=0)), func.count())
                 .join(instances, instances.c.id == ec.instance_id).where(ec.id.in_(matching)).group_by(column))
        out = [OverdueCount(code, names.get(code, code), int(n_late or 0), int(n) - int(n_late or 0))
               for code, n_late, n in session.execute(query)]
        return sorted(out, key=lambda c: (order.get(c.unit, 1_000_000), c.unit))

    by_station = grouped(ec.unit)
    by_responsible = grouped(func.coalesce(ec.handling_unit, ec.unit))
    total = sum(c.overdue + c.near for c in by_station)
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    ids = list(session.scalars(matching.order_by(case((late, 0), else_=1), instances.c.due_at.is_(None),
                                                  instances.c.due_at, ec.business_key)
                               .limit(page_size).offset((page - 1) * page_size)))
    rows = []
    if ids:
        found = {r.id: r for r in session.execute(
            select(ec.id, ec.business_key, ec.instance_id, ec.unit, ec.enterprise_name, ec.title, ec.overdue,
                   ec.ledger_status, instances.c.due_at)
            .join(instances, instances.c.id == ec.instance_id).where(ec.id.in_(ids)))}
        involved: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
        for case_id, code, at in session.execute(select(CaseUnit.case_id, CaseUnit.unit_code, CaseUnit.at).where(
                CaseUnit.case_id.in_(ids), CaseUnit.role.in_(HANDLING_ROLES))):
            involved[case_id].append((at, code))
        for i in ids:
            r = found[i]
            responsible = responsible_of(involved.get(i, []), r.unit)
            past = bool(r.overdue) or (r.due_at is not None and r.due_at < now)
            days = (None if r.due_at is None
                    else cal.working_days_between(r.due_at.astimezone(SHANGHAI).date(), today))
            rows.append(OverdueRow(r.business_key, r.instance_id, r.unit, names.get(r.unit, r.unit),
                                   r.enterprise_name, r.title, responsible,
                                   [names.get(c, c) for c in responsible], r.due_at, past, days, r.ledger_status))
    overdue = sum(c.overdue for c in by_station)
    return OverdueBoard(rows, page, pages, total, overdue, total - overdue, by_station, by_responsible)


def responsible_of(involved: list[tuple[datetime, str]], accepting: str) -> list[str]:
    """The units of the latest transfer or joint review, else the accepting unit (as ``handlers.supervise``)."""
    if not involved:
        return [accepting]
    latest = max(at for at, _ in involved)
    return list(dict.fromkeys(code for at, code in involved if at == latest))


def is_open_for_reminder(session: Session, engine: ProcessEngine, business_key: str,
                         where: ColumnElement[bool] | None) -> Any:
    """The ledger row and instance status of a case the viewer may see, or None."""
    instances = engine.runtime.view()
    ec = EnterpriseCase
    return session.execute(
        select(ec.id, ec.instance_id, ec.business_key, ec.unit, ec.title, ec.enterprise_name, ec.overdue,
               ec.ledger_status, instances.c.status, instances.c.due_at)
        .join(instances, instances.c.id == ec.instance_id)
        .where(and_(ec.business_key == business_key, *([where] if where is not None else [])))).one_or_none()
