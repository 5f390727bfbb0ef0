"""``transfer`` (流转交办, FH-4 / PA-4): hand the case to one handling unit (承办单位) with the centre's opinion.

Sets ``handling_unit`` (a unit code, which the diagram may use for candidate groups or later notices) and
records the unit as ``handling`` in ``case_unit``, so the unit's users may see the case and the briefing
counts it for that unit. A second transfer (e.g. after a wrong assignment) moves the case to the new unit;
the earlier unit stays recorded as once involved. ``clear`` names variables a new round empties (Fenghua:
an earlier round's agreed date and extension request).
"""

from __future__ import annotations

from typing import Any

from engine.services import ServiceCall

from .common import add_case_unit, case_of, cleared, require_unit


def handle(call: ServiceCall) -> dict[str, Any]:
    """流转交办：交承办单位办理 (unit = 单位编码, opinion = 分解落实意见)."""
    target = require_unit(call, call.params.get("unit"), "承办单位")
    opinion = str(call.params.get("opinion") or "").strip() or None
    case = case_of(call)
    previous = case.handling_unit
    case.handling_unit = target.code
    case.transferred_at = call.now
    add_case_unit(call, case, target.code, "handling", opinion)
    note = f"流转交办至 {target.name}（{target.code}）"
    if previous and previous != target.code:
        note += f"，原承办单位 {previous}"
    call.notes.append({"note": note, "unit": target.code, "opinion": opinion})
    return {"handling_unit": target.code, "transferred_at": call.now.isoformat(), **cleared(call)}
