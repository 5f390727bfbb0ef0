"""One-click 催办 from the overdue board (FH-7 跟踪催办, PA-9 跟踪督办), through the engine's one way in.

A supervisor's 催办 is a change of the case, so it is one versioned step of
:meth:`engine.runtime.RuntimeService.record_event`: a history event ``reminder_sent`` whose actor is the
supervisor (in the keyed chain, shown on the case page as 一键催办 with the units and the sender's name),
and in the same transaction a notice per responsible unit in the outbox (``qifu outbox send`` delivers it to
the unit's liaison, else the unit's phone), exactly as a diagram's ``notify`` task queues one.

When the deadline has already passed, the 催办 is also a :class:`~handlers.models.Supervision` row of kind
催办 against each responsible unit, so the KPIs and the briefing count it; a reminder sent before the
deadline is a 提醒 (history and notice only): a supervision row means "a deadline passed", which the
ledger's 挂账 and the KPIs' 超期未办结 rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from engine.errors import ConflictError, NotFoundError
from engine.process_engine import ProcessEngine
from handlers.models import CaseUnit, OrgUnit, Outbox, Supervision
from handlers.notify import TEMPLATES

from .read.overdue import HANDLING_ROLES, is_open_for_reminder, responsible_of

ACTION = "reminder_sent"
MAX_MESSAGE = 200


@dataclass(frozen=True)
class Reminder:
    business_key: str
    units: list[str]
    unit_names: list[str]
    overdue: bool
    notices: int


def send_reminder(engine: ProcessEngine, business_key: str, *, where: ColumnElement[bool] | None,
                  username: str, sender: str, message: str = "", now: datetime) -> Reminder:
    """催办 the units answerable for ``business_key`` now; refuses a case the viewer cannot see (404) or
    that is no longer being handled (409)."""
    message = " ".join((message or "").split())[:MAX_MESSAGE]
    with engine.read() as session:
        case = is_open_for_reminder(session, engine, business_key, where)
        if case is None:
            raise NotFoundError(f"案件不存在：{business_key}")
        if case.status != "running" or case.ledger_status == "closed":
            raise ConflictError("案件已办结（销账），无需催办")
        involved = [(at, code) for at, code in session.execute(
            select(CaseUnit.at, CaseUnit.unit_code).where(CaseUnit.case_id == case.id,
                                                         CaseUnit.role.in_(HANDLING_ROLES)))]
        units = responsible_of(involved, case.unit)
        found = {u.code: u for u in session.scalars(select(OrgUnit).where(OrgUnit.code.in_(units)))}
        names = [found[c].name if c in found else c for c in units]
        addresses = {c: (found[c].liaison_phone or found[c].phone) if c in found else None for c in units}
    overdue = bool(case.overdue) or (case.due_at is not None and case.due_at < now)
    template = "overdue" if overdue else "reminder"
    body = TEMPLATES[template].format(business_key=business_key, title=case.title or case.enterprise_name)
    body += f"（督办人：{sender}）" + (f"督办意见：{message}" if message else "")
    reason = f"一键催办（{sender}）" + (f"：{message}" if message else "")

    def writes(session: Session) -> None:
        for code in units:
            session.add(Outbox(instance_id=case.instance_id, business_key=business_key, recipient=code,
                               address=addresses.get(code), template=template, body=body, created_at=now,
                               attempts=0))
            if overdue:
                session.add(Supervision(case_id=case.id, kind="催办", unit_code=code, reason=reason, at=now))

    engine.runtime.record_event(case.instance_id, ACTION, actor=username, details={
        "units": units, "unit_names": names, "sender": sender, "reason": reason, "overdue": overdue,
        "template": template}, also=writes)
    return Reminder(business_key, units, names, overdue, len(units))
