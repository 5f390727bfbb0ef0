"""``rework`` (不满意核实与整改, RC-7): a 不满意 rating is verified (核实) and, if justified, goes back for rework.

Action ``verify`` (after the 核实不满意 form): reads ``verify_result`` (``justified`` 属实 / ``unjustified`` 不属实)
and ``verify_reason`` (required: refused in Chinese when missing, and the whole step rolls back).

- **不属实** (unjustified): the case closes (销账) with the reason recorded on the case history; the rating stays.
- **属实** (justified): the case goes back on the books (挂账, ``carried``) for rework by whoever handled it — the
  station window (综合受理板块) for an on-the-spot answer, the 代办服务板块 for a case it solved, the
  诉求服务板块 for a complaint, a plan or a case it or the county window handled — read from the case history
  (the last answering task completed). The rework count is kept in ``rework_count``; from the second justified
  不满意 on (``escalate_after``, default 1 rework) the rework goes to the 诉求服务板块 (``escalate_group``)
  whoever handled it before. The rating is forgotten in the case data so the next revisit's rating is new.

Returns ``rework_justified`` (bool), ``rework_group`` (the candidate group of the rework task),
``rework_count`` and ``ledger_status``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.models import Event
from engine.services import ServiceCall

from .common import case_of, fail

RESULTS = {"justified": "属实", "unjustified": "不属实"}
HANDLED_BY = {  # answering task -> candidate group that reworks it
    "Task_AnswerOnSpot": "综合受理板块",
    "Task_AgencyHandle": "代办服务板块",
    "Task_Appeal": "诉求服务板块",
    "Task_PlanExecute": "诉求服务板块",
    "Task_CountyHandle": "诉求服务板块",
}
ESCALATE_GROUP = "诉求服务板块"


def handled_by(call: ServiceCall) -> str:
    """The candidate group that answered the case last (the window when nothing else is recorded)."""
    spec = call.session.scalar(
        select(Event.spec_id).where(Event.instance_id == call.instance_id, Event.spec_id.in_(list(HANDLED_BY)))
        .order_by(Event.seq.desc()).limit(1))
    return HANDLED_BY.get(spec or "", "综合受理板块")


def handle(call: ServiceCall) -> dict[str, Any]:
    """不满意核实：属实的退回原办理板块整改，不属实的说明理由后销账 (action = verify)."""
    action = str(call.params.get("action") or "verify").strip()
    if action != "verify":
        fail(call, f"不满意核实操作“{action}”无效，应为 verify")
    result = str(call.data.get("verify_result") or "").strip()
    if result not in RESULTS:
        fail(call, "请选择核实结果：属实（justified）或不属实（unjustified）")
    reason = str(call.data.get("verify_reason") or "").strip()
    if not reason:
        fail(call, "核实不满意须填写核实理由")
    case = case_of(call)
    if result == "unjustified":
        case.ledger_status = "closed"
        case.closed_at = call.now
        call.notes.append({"note": f"不满意核实：不属实，销账。理由：{reason}", "verify_result": result,
                           "verify_reason": reason})
        return {"rework_justified": False, "ledger_status": case.ledger_status}
    try:
        escalate_after = int(call.params.get("escalate_after") or 1)
    except (TypeError, ValueError):
        fail(call, f"“升级前整改次数”（escalate_after）应为整数，而不是“{call.params.get('escalate_after')}”")
    count = int(call.data.get("rework_count") or 0)
    group = str(call.params.get("escalate_group") or ESCALATE_GROUP) if count >= escalate_after else handled_by(call)
    count += 1
    case.ledger_status = "carried"
    case.closed_at = None
    case.satisfaction = None
    call.notes.append({"note": f"不满意核实：属实，第 {count} 次退回 {group} 整改，整改后100%回访。理由：{reason}",
                       "verify_result": result, "verify_reason": reason, "rework_group": group,
                       "rework_count": count})
    return {"rework_justified": True, "rework_group": group, "rework_count": count,
            "ledger_status": case.ledger_status, "satisfaction": None}
