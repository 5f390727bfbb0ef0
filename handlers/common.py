"""Helpers shared by the handlers: finding the case of a step, checking unit codes, parsing parameters.

Handler errors are :class:`engine.errors.ServiceTaskError` with a Chinese message naming the diagram element,
so the engine rolls the step back and the clerk (or the designer) reads *what* is wrong and *where*.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import to_utc
from engine.errors import ServiceTaskError
from engine.services import ServiceCall

from .models import SATISFACTION_VALUES, CaseUnit, EnterpriseCase, OrgUnit, Rating

_SPLIT = re.compile(r"[,，、;；\s]+")


def fail(call: ServiceCall, message: str) -> NoReturn:
    """Refuse the step with a clear message (the engine rolls the whole step back)."""
    raise ServiceTaskError(message, element=call.element_id)


def cleared(call: ServiceCall) -> dict[str, str]:
    """The variables a diagram asks this step to empty (input ``clear``: names separated by commas), as
    results its output parameters map by name (``${agreed_date}``): an element template binds an output by
    its source, so several outputs emptied by one shared empty source would collapse into one."""
    names = [n.strip() for n in str(call.params.get("clear") or "").split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        fail(call, f"参数 clear 中的变量名无效：{'、'.join(bad)}（应为以逗号分隔的变量名）")
    return dict.fromkeys(names, "")


def case_of(call: ServiceCall) -> EnterpriseCase:
    """The ledger row of the step's case, brought up to date with the case data the diagram's forms set.

    Handlers other than ``ledger register`` need the row; a diagram that forgot to register first gets a
    clear error instead of silently losing what the handler was to record.
    """
    case = call.session.scalar(select(EnterpriseCase).where(EnterpriseCase.instance_id == call.instance_id))
    if case is None:
        fail(call, f"案件 {call.business_key} 尚未登记台账：流程须先执行“登记台账”服务任务（ledger，action=register）")
    sync_from_data(call, case)
    return case


def sync_from_data(call: ServiceCall, case: EnterpriseCase) -> None:
    """Copy the form variables the ledger shows (classification, scope, satisfaction…) from the case data.

    A satisfaction value new to the case is recorded as a :class:`~handlers.models.Rating` (FH-7/FH-8), so
    a rating given in a revisit form is kept whichever handler runs next.
    """
    data = call.data
    for name in ("classification", "scope", "category"):
        value = data.get(name)
        if isinstance(value, str) and value and getattr(case, name) != value:
            setattr(case, name, value[:40])
    satisfaction = data.get("satisfaction")
    if isinstance(satisfaction, str) and satisfaction in SATISFACTION_VALUES and satisfaction != case.satisfaction:
        comment = data.get("satisfaction_comment") or data.get("rating_comment")
        call.session.add(Rating(case_id=case.id, value=satisfaction, comment=str(comment) if comment else None,
                                source=str(data.get("rating_source") or "revisit"), at=call.now))
        case.satisfaction = satisfaction
        call.notes.append({"note": f"满意度评价：{satisfaction}"})
    case.updated_at = call.now


def unit(session: Session, code: Any) -> OrgUnit | None:
    if not isinstance(code, str) or not code.strip():
        return None
    return session.scalar(select(OrgUnit).where(OrgUnit.code == code.strip()))


def require_unit(call: ServiceCall, code: Any, what: str = "单位") -> OrgUnit:
    """The active unit with ``code``, or a clear refusal naming the unknown code."""
    if not isinstance(code, str) or not code.strip():
        fail(call, f"未指定{what}编码")
    row = unit(call.session, code)
    if row is None or not row.active:
        fail(call, f"未知的{what}编码“{code}”（请在单位列表中选择，例如 FH-JXJ、PA01）")
    return row


def code_list(value: Any) -> list[str]:
    """A list of codes from a list, or text separated by commas (also ，、；) or spaces; order kept, no repeats."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple, set)) else _SPLIT.split(str(value))
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if text and text not in out:
            out.append(text)
    return out


def instant(call: ServiceCall, value: Any, what: str) -> datetime:
    """An aware UTC instant from a parameter (ISO text, naive = Asia/Shanghai); empty means *now*."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return call.now
    try:
        return to_utc(value if isinstance(value, datetime) else str(value).strip())
    except (TypeError, ValueError):
        fail(call, f"{what}不是有效的日期时间：“{value}”（例如 2026-10-09T09:00:00）")


def add_case_unit(call: ServiceCall, case: EnterpriseCase, code: str, role: str,
                  opinion: str | None = None) -> CaseUnit:
    """Record that ``code`` is involved in the case in ``role`` (once per unit and role)."""
    for row in case.units:
        if row.unit_code == code and row.role == role:
            if opinion:
                row.opinion = opinion
            return row
    row = CaseUnit(unit_code=code, role=role, at=call.now, opinion=opinion)
    case.units.append(row)
    return row
