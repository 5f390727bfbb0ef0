"""``joint_review`` (会商 / 专班商办, FH-5; PA-4's joint handling): record the co-handling units and the meeting.

``units``: the co-handling unit codes (a list, or text separated by commas/、); ``invitees``: units invited
to attend (e.g. 区纪委区监委, 区委作风办 — codes or names, may be empty); ``meeting_at``: when the joint meeting
was held (empty: now). Returns ``joint_units`` (list of codes) and ``meeting_at`` (ISO instant), from which
the diagram counts the 5 working days: ``${working_days_after(meeting_at, 5)}``.
"""

from __future__ import annotations

from typing import Any

from engine.services import ServiceCall

from .common import add_case_unit, case_of, code_list, fail, instant, require_unit, unit
from .models import JointReview


def handle(call: ServiceCall) -> dict[str, Any]:
    """会商：专班牵头、共同承办单位会商共审 (units, invitees, meeting_at)."""
    codes = code_list(call.params.get("units"))
    if not codes:
        fail(call, "会商须至少指定一个共同承办单位")
    units = [require_unit(call, code, "共同承办单位") for code in codes]
    invitees = []
    for item in code_list(call.params.get("invitees")):
        known = unit(call.session, item)
        invitees.append(known.name if known else item)
    meeting_at = instant(call, call.params.get("meeting_at"), "会商时间")
    case = case_of(call)
    for row in units:
        add_case_unit(call, case, row.code, "co_handling")
    call.session.add(JointReview(case_id=case.id, units=",".join(codes), invitees="，".join(invitees),
                                 meeting_at=meeting_at, at=call.now))
    names = "、".join(row.name for row in units)
    note = f"专班会商：共同承办单位 {names}"
    if invitees:
        note += f"；列席 {'、'.join(invitees)}"
    call.notes.append({"note": note, "units": codes, "invitees": invitees, "meeting_at": meeting_at.isoformat()})
    return {"joint_units": codes, "meeting_at": meeting_at.isoformat()}
