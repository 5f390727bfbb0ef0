"""``ledger`` (台账): register a case in the service ledger and move its ledger status (PA-7, FH-8).

Statuses: ``handling`` 办理中 → ``answered`` 已答复 → ``closed`` 销账. ``carried`` 挂账 when a deadline passed
before the answer (set by ``supervise`` or ``action=carry``) or the enterprise was dissatisfied; a carried case
stays on the books until solved and rated satisfied, then ``close`` closes it.

Actions (parameter ``action``):

- ``register`` — create the ``enterprise_case`` row from the case data set at intake (docs/domain.md);
  the diagram's first service task, so the row is written in the same transaction as the start.
- ``status`` — set ``status`` (one of the four) explicitly.
- ``answered`` — the unit answered the enterprise (答复): ``answered_at``; late if the case was overdue.
- ``close`` — 销账; refused into ``carried`` when the latest rating is 不满意 (FH-8: 直至企业满意).
- ``carry`` — 挂账.
- ``reopen`` — the enterprise was dissatisfied: back to handling, kept on the books as ``carried``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.clock import SHANGHAI, to_utc
from engine.services import ServiceCall

from .common import case_of, fail, sync_from_data
from .models import LEDGER_STATUS_NAMES, LEDGER_STATUSES, EnterpriseCase, OrgUnit

ACTIONS = ("register", "status", "answered", "close", "carry", "reopen")
TEXT_FIELDS = {  # case-data variable -> max length stored
    "channel": 40, "category": 40, "enterprise_name": 200, "credit_code": 18, "contact_name": 100,
    "contact_phone": 30, "contact_id_number": 18, "title": 200, "tracking_hash": 64,
}


def handle(call: ServiceCall) -> dict[str, Any]:
    """台账：登记案件、更新台账状态 (action = register / status / answered / close / carry / reopen)."""
    action = str(call.params.get("action") or "").strip()
    if action not in ACTIONS:
        fail(call, f"台账操作“{action}”无效，应为 {' / '.join(ACTIONS)}")
    if action == "register":
        case = register(call)
    else:
        case = case_of(call)
        _ACTIONS[action](call, case)
    if action == "reopen":
        # the rating that sent the case back is recorded; the next rating is a new one even if it is
        # 不满意 again, so forget it on the case and in the case data (sync_from_data compares the two)
        return {"ledger_status": case.ledger_status, "satisfaction": None}
    return {"ledger_status": case.ledger_status}


def register(call: ServiceCall) -> EnterpriseCase:
    """Create (or, on a second register of the same case, refresh) the ledger row from the case data."""
    data = call.data
    missing = [name for name in ("region", "unit", "enterprise_name", "received_at") if not data.get(name)]
    if missing:
        fail(call, f"登记台账缺少案件数据：{', '.join(missing)}（案件应通过受理入口 submit_case 创建）")
    unit_code = str(data["unit"])
    # one round trip: does the unit exist, and has this case a ledger row already (a second register)
    unit_id, case_id = call.session.execute(select(
        select(OrgUnit.id).where(OrgUnit.code == unit_code).scalar_subquery(),
        select(EnterpriseCase.id).where(EnterpriseCase.instance_id == call.instance_id).scalar_subquery())).one()
    if unit_id is None:
        fail(call, f"未知的受理单位编码“{unit_code}”")
    try:
        received_at = to_utc(str(data["received_at"]))
    except ValueError:
        fail(call, f"受理时间无效：“{data['received_at']}”")
    case = call.session.get(EnterpriseCase, case_id) if case_id is not None else None
    if case is None:
        case = EnterpriseCase(instance_id=call.instance_id, business_key=call.business_key,
                              process_key=call.process_key, ledger_status="handling", overdue=False,
                              created_at=call.now)
        call.session.add(case)
    case.region = str(data["region"])
    case.unit = unit_code
    case.received_at = received_at
    for name, size in TEXT_FIELDS.items():
        value = data.get(name)
        setattr(case, name, str(value)[:size] if value not in (None, "") else None)
    case.description = str(data["description"]) if data.get("description") else None
    case.updated_at = call.now
    call.session.flush()
    sync_from_data(call, case)
    call.notes.append({"note": f"登记台账：{case.enterprise_name}（{unit_code}）", "ledger_status": "handling"})
    return case


def _set(call: ServiceCall, case: EnterpriseCase, status: str, note: str) -> None:
    old = case.ledger_status
    case.ledger_status = status
    case.updated_at = call.now
    call.notes.append({"note": note, "ledger_status": status, "from": old})


def _status(call: ServiceCall, case: EnterpriseCase) -> None:
    status = str(call.params.get("status") or "").strip()
    if status not in LEDGER_STATUSES:
        fail(call, f"台账状态“{status}”无效，应为 {' / '.join(LEDGER_STATUSES)}")
    _set(call, case, status, f"台账状态改为{LEDGER_STATUS_NAMES[status]}")


def _record_answer(call: ServiceCall, case: EnterpriseCase) -> None:
    """When the enterprise got its answer, whether late, and after how many working days (for the averages)."""
    case.answered_at = call.now
    case.answered_late = bool(case.overdue)
    received = to_utc(case.received_at).astimezone(SHANGHAI).date()
    case.answered_working_days = call.calendar.working_days_between(received, call.now.astimezone(SHANGHAI).date())


def _answered(call: ServiceCall, case: EnterpriseCase) -> None:
    _record_answer(call, case)
    if case.ledger_status == "carried":  # answered, but stays on the books until the enterprise is satisfied
        _set(call, case, "carried", "已答复（超期，仍挂账）" if case.overdue else "已答复（仍挂账）")
    else:
        _set(call, case, "answered", "已答复（超期）" if case.overdue else "已按时答复")


def _close(call: ServiceCall, case: EnterpriseCase) -> None:
    if case.satisfaction == "不满意":
        _set(call, case, "carried", "企业不满意，不予销账，继续挂账")
        return
    case.closed_at = call.now
    if case.answered_at is None:
        _record_answer(call, case)
    _set(call, case, "closed", "销账")


def _carry(call: ServiceCall, case: EnterpriseCase) -> None:
    reason = str(call.params.get("reason") or "").strip()
    _set(call, case, "carried", f"挂账{('：' + reason) if reason else ''}")


def _reopen(call: ServiceCall, case: EnterpriseCase) -> None:
    case.closed_at = None
    case.satisfaction = None
    _set(call, case, "carried", "企业不满意，退回重新办理（挂账）")


_ACTIONS = {"status": _status, "answered": _answered, "close": _close, "carry": _carry, "reopen": _reopen}
