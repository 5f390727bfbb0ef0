"""典型案例 of a month's 简报: cases a supervisor marks, with a note, for the briefing's last section.

A mark is the supervisor's editorial choice about the briefing, not a change of the case (a typical case is
often closed, and a closed case takes no further step), so it is logged in ``admin_log`` (kind
``typical_case``: who, when, which case, the note), where the briefing finds the month's marks by the
log's kind index. Marking a case again replaces its note; marking it with 取消 removes it from the month.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from engine.errors import QifuError
from engine.process_engine import ProcessEngine
from handlers.models import EnterpriseCase, OrgUnit

from .admin import record
from .models import AdminLog
from .read.kpi import parse_period

KIND = "typical_case"
MAX_NOTE = 300
REMOVE = "取消"


@dataclass(frozen=True)
class TypicalCase:
    business_key: str
    enterprise_name: str
    title: str | None
    unit_name: str
    ledger_status: str
    note: str
    marked_by: str


def _prefix(region: str | None, month: str) -> str:
    return f"{region or 'all'}:{month}:"


def mark(engine: ProcessEngine, business_key: str, *, month: str, note: str, region: str | None,
         where: ColumnElement[bool] | None, username: str, sender: str, now: datetime) -> None:
    period = parse_period(month)
    if period.kind != "month":
        raise QifuError(f"月份格式应为 YYYY-MM：“{month[:20]}”")
    key = (business_key or "").strip()[:40]
    text = " ".join((note or "").split())[:MAX_NOTE]
    if not text:
        raise QifuError("请填写典型案例的说明（或填“取消”撤销标记）")
    with engine.session() as session:
        found = session.scalar(select(EnterpriseCase.id).where(
            EnterpriseCase.business_key == key, *([where] if where is not None else [])))
        if found is None:
            raise QifuError(f"案件不存在或不在本区域：“{key}”")
        record(session, actor=username, kind=KIND, target=_prefix(region, period.text) + key, summary=text,
               now=now, details={"business_key": key, "month": period.text, "note": text, "sender": sender})


def typical_cases(session: Session, region: str | None, month: str) -> list[TypicalCase]:
    """The month's marked cases, oldest mark first, each with its latest note (取消 removes it)."""
    prefix = _prefix(region, month)
    latest: dict[str, tuple[str, str]] = {}
    for target, details_json in session.execute(
            select(AdminLog.target, AdminLog.details_json)
            .where(AdminLog.kind == KIND, AdminLog.target.startswith(prefix)).order_by(AdminLog.at, AdminLog.id)):
        details = json.loads(details_json or "{}")
        key = target[len(prefix):]
        latest.pop(key, None)  # a new mark moves the case to the end
        latest[key] = (str(details.get("note") or ""), str(details.get("sender") or ""))
    wanted = [k for k, (note, _) in latest.items() if note != REMOVE]
    if not wanted:
        return []
    names = dict(session.execute(select(OrgUnit.code, OrgUnit.name)).all())
    rows = {r.business_key: r for r in session.execute(
        select(EnterpriseCase.business_key, EnterpriseCase.enterprise_name, EnterpriseCase.title,
               EnterpriseCase.unit, EnterpriseCase.ledger_status).where(EnterpriseCase.business_key.in_(wanted)))}
    from handlers.models import LEDGER_STATUS_NAMES

    return [TypicalCase(k, rows[k].enterprise_name, rows[k].title, names.get(rows[k].unit, rows[k].unit),
                        LEDGER_STATUS_NAMES.get(rows[k].ledger_status, rows[k].ledger_status), *latest[k])
            for k in wanted if k in rows]
