"""``supervise`` (督办 / 催办, FH-7 跟踪催办, FH-8 考核督办, PA-9 跟踪督办): a deadline passed or the office
chases a unit.

Records a :class:`~handlers.models.Supervision` row against each unit responsible at that moment — the
units of the latest transfer or joint review, else the accepting unit (the briefing and the year-end
assessment count them per unit) — sets the case's ``overdue`` flag and, if the case
was still being handled, puts it on the books as ``carried`` 挂账 (a deadline passed before the answer).

Optional parameters: ``units`` names the responsible units instead (codes, e.g. ``${unit}``: the accepting
station or centre, whose revisit is late — RC-8); ``overdue = no`` records the 催办/督办 without flagging the
case overdue or carrying it (a step after the answer, such as the revisit, being late does not make the
answer late).
"""

from __future__ import annotations

from typing import Any

from engine.services import ServiceCall

from .common import case_of, code_list, fail, require_unit
from .models import SUPERVISION_KINDS, EnterpriseCase, Supervision


def handle(call: ServiceCall) -> dict[str, Any]:
    """督办/催办：记录并标记超期 (kind = 催办 / 督办, reason)."""
    kind = str(call.params.get("kind") or "").strip()
    if kind not in SUPERVISION_KINDS:
        fail(call, f"督办类型“{kind}”无效，应为 催办 或 督办")
    reason = str(call.params.get("reason") or "").strip() or None
    flag = str(call.params.get("overdue") or "").strip().lower()
    if flag not in ("", "yes", "no"):
        fail(call, f"“是否标记超期”（overdue）应为空、yes 或 no，而不是“{flag}”")
    case = case_of(call)
    named = code_list(call.params.get("units"))
    targets = [require_unit(call, code, "责任单位").code for code in named] if named else responsible_units(case)
    for code in targets:
        call.session.add(Supervision(case_id=case.id, kind=kind, unit_code=code, reason=reason, at=call.now))
    note = f"{kind}：{'、'.join(targets)}" + (f"，{reason}" if reason else "")
    if flag == "no":
        call.notes.append({"note": note, "kind": kind, "units": targets, "ledger_status": case.ledger_status})
        return {}
    case.overdue = True
    if case.ledger_status == "handling":
        case.ledger_status = "carried"
        note += "；超期未答复，挂账"
    call.notes.append({"note": note, "kind": kind, "units": targets, "ledger_status": case.ledger_status})
    return {"overdue": True}


def responsible_units(case: EnterpriseCase) -> list[str]:
    """Codes of the units answerable now: those of the latest transfer or joint review, else the accepting unit."""
    involved = [cu for cu in case.units if cu.role in ("handling", "co_handling")]
    if not involved:
        return [case.unit]
    latest = max(cu.at for cu in involved)
    # a unit both handling and co-handling the same round (a station with its panels) answers once
    return list(dict.fromkeys(cu.unit_code for cu in involved if cu.at == latest))
