"""``signoff`` (办结审核, RC-3): record the centre's sign-off of a handling unit's answer.

The unit's answer waits in 办结审核 (中心工作人员) before any reply reaches the enterprise. ``decision``
(``${signoff}``, a required form field) is one of:

- ``approve`` — the answer goes on to the reply as before; a note in the case history;
- ``return`` — 退回重办: ``reason`` is required (a missing one is a :func:`~handlers.common.fail`: the step is
  rolled back and nothing changes); ``sent_back_count`` (the case's count of 退回重办, from ``count``) goes
  up by one and the history note carries ``sent_back: true`` and the unit, so the KPIs can count send-backs
  per unit. The unit's handling task is entered again; its deadline (``due_date`` / ``transferred_at``) is
  not touched, so it continues rather than restarts.

The reason and the count are read from the case's data (``signoff_reason``, ``sent_back_count``; the names
can be changed with the ``reason_field`` / ``count_field`` parameters), not as ``${…}`` parameters: neither
exists before the first send-back, and an expression naming an undefined variable is an error.
"""

from __future__ import annotations

from typing import Any

from engine.services import ServiceCall

from .common import case_of, fail

DECISIONS = ("approve", "return")


def handle(call: ServiceCall) -> dict[str, Any]:
    """办结审核: approve the unit's answer, or send it back with a reason and count the send-back."""
    decision = str(call.params.get("decision") or "").strip()
    if decision not in DECISIONS:
        fail(call, f"请选择审核结论（同意答复 approve / 退回重办 return）：“{decision}”")
    case = case_of(call)
    reason_field = str(call.params.get("reason_field") or "signoff_reason").strip()
    count_field = str(call.params.get("count_field") or "sent_back_count").strip()
    raw = call.data.get(count_field)
    try:
        count = int(str(raw).strip()) if raw is not None and str(raw).strip() else 0
    except ValueError:
        fail(call, f"退回重办次数须为整数：“{raw}”")
    reason = str(call.data.get(reason_field) or "").strip()
    if decision == "approve":
        call.notes.append({"note": "中心审核同意承办单位的办理结果，答复企业" + (f"，审核意见：{reason}" if reason else ""),
                           "unit": case.handling_unit, "signoff": "approve"})
        return {count_field: count, reason_field: ""}
    if not reason:
        fail(call, "退回重办须填写退回原因")
    count += 1
    call.notes.append({"note": f"中心审核退回重办（第{count}次），承办单位继续办理，办理期限不变，退回原因：{reason}",
                       "unit": case.handling_unit, "signoff": "return", "sent_back": True,
                       "sent_back_count": count, "reason": reason})
    return {count_field: count, reason_field: ""}
