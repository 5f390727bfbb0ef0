"""``escalate`` (上报): report a case up — PA-5 to the county centre's 兜底服务板块 (难事办理窗口), FH-6 to the
district enterprise service leading group (领导小组).

``to`` is the *kind* of body (``county_window`` / ``leading_group``); the unit is the one of that kind in the
case's region, so a Pan'an diagram cannot escalate to Fenghua's leading group by mistake. Returns
``escalated_to`` (the ``to`` value, handy for gateways), ``escalated_unit`` (its unit code) and
``escalated_at``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.services import ServiceCall

from .common import add_case_unit, case_of, fail
from .models import OrgUnit

TARGETS = {"county_window": "县企业综合服务中心兜底服务板块（难事办理窗口）", "leading_group": "企业服务工作领导小组"}


def handle(call: ServiceCall) -> dict[str, Any]:
    """上报：报县难事办理窗口或区领导小组 (to = county_window / leading_group, reason)."""
    to = str(call.params.get("to") or "").strip()
    if to not in TARGETS:
        fail(call, f"上报对象“{to}”无效，应为 county_window（难事办理窗口）或 leading_group（领导小组）")
    reason = str(call.params.get("reason") or "").strip() or None
    case = case_of(call)
    target = call.session.scalar(select(OrgUnit).where(OrgUnit.kind == to, OrgUnit.region == case.region,
                                                       OrgUnit.active.is_(True)).order_by(OrgUnit.sort))
    if target is None:
        fail(call, f"本区域（{case.region}）没有{TARGETS[to]}，无法上报")
    case.escalated_to = target.code
    case.escalated_at = call.now
    add_case_unit(call, case, target.code, "escalated", reason)
    call.notes.append({"note": f"上报 {target.name}" + (f"：{reason}" if reason else ""), "unit": target.code,
                       "reason": reason})
    return {"escalated_to": to, "escalated_unit": target.code, "escalated_at": call.now.isoformat()}
