"""``deadline`` (延期申请 / 约定办结时限, RC-2): check and record a move of a handling deadline.

The deadline timer of the handling task reads ``due_date`` (a date; empty means the task's own limit), so
moving the deadline is setting that variable: the task is entered afresh and its timer evaluated again.
This handler is the one place the bounds are kept, for both ways a deadline moves:

- ``action=request`` — the handling unit asks the centre for an extension (``date``, ``reason``);
- ``action=agree`` — the unit has agreed a completion date with the enterprise (``date``, ``reason``, the
  enterprise's ``confirmed_by``); the date takes effect at once (FH-4: 与企业约定办结时限);
- ``action=open`` — only that the current deadline has not passed (before the unit agrees a date);
- ``action=decide`` — the centre's ``decision`` on a request: ``approve`` moves ``due_date`` to the requested
  date, ``refuse`` keeps it.

Bounds (request and agree; approve re-checks the date): the current deadline has not passed; the date is not
in the past, is after the current deadline and at most ``max_days`` working days after the original limit
(``days`` working days from ``since``). A refusal is a :func:`~handlers.common.fail`: the step is rolled back
and nothing changes. Every outcome is a note in the case history with the reason.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from engine.clock import SHANGHAI, to_utc
from engine.services import ServiceCall

from .common import case_of, cleared, fail, instant

ACTIONS = ("open", "request", "agree", "decide")
DECISIONS = ("approve", "refuse")


def _int(call: ServiceCall, name: str, default: int) -> int:
    value = call.params.get(name)
    if value is None or str(value).strip() == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        fail(call, f"参数 {name} 须为工作日数（整数）：“{value}”")
    if number < 0:
        fail(call, f"参数 {name} 不能为负数：{number}")
    return number


def _day(call: ServiceCall, value: Any, what: str) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return to_utc(value).astimezone(SHANGHAI).date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10]) if len(text) <= 10 else to_utc(text).astimezone(SHANGHAI).date()
    except ValueError:
        fail(call, f"{what}不是有效的日期：“{value}”（例如 2026-10-20）")


def _label(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def handle(call: ServiceCall) -> dict[str, Any]:
    """延期申请 / 约定办结时限 / 中心审批延期: bound the new date, record it, move ``due_date`` when approved;
    ``clear`` names the variables to empty afterwards (the request just decided)."""
    return {**_handle(call), **cleared(call)}


def _handle(call: ServiceCall) -> dict[str, Any]:
    action = str(call.params.get("action") or "").strip()
    if action not in ACTIONS:
        fail(call, f"deadline 的 action 须为 {' / '.join(ACTIONS)} 之一：“{action}”")
    cal = call.calendar
    since = instant(call, call.params.get("since"), "交办时间")
    days = _int(call, "days", 2)
    max_days = _int(call, "max_days", 10)
    original = cal.add_working_days(since.astimezone(SHANGHAI).date(), days)
    current_param = _day(call, call.params.get("current"), "当前办结日期")
    current = cal.add_working_days(current_param, 0) if current_param else original
    latest = cal.add_working_days(original, max_days)
    today = call.now.astimezone(SHANGHAI).date()
    requested = _day(call, call.params.get("date"), "申请的办结日期")
    reason = str(call.params.get("reason") or "").strip()
    what = "约定办结日期" if action == "agree" else "延期日期"

    def check_date() -> date:
        if requested is None:
            fail(call, f"请填写{what}")
        if requested < today:
            fail(call, f"{what}{_label(requested)}早于今天（{_label(today)}），不能选择已过去的日期")
        if requested <= current:
            fail(call, f"{what}{_label(requested)}须晚于当前办理期限{_label(current)}")
        if requested > latest:
            fail(call, f"{what}{_label(requested)}超过最长期限：最多在原办理期限{_label(original)}后延长"
                       f"{max_days}个工作日，即不晚于{_label(latest)}")
        return requested

    case = case_of(call)
    unchanged = {"due_date": current_param.isoformat() if current_param else ""}
    if action in ("open", "request", "agree") and call.now > cal.end_of(current):
        fail(call, f"办理期限{_label(current)}已过，不能再申请延期或约定办结时限；超期案件由中心催办、挂账")
    if action == "open":
        return unchanged
    if action in ("request", "agree"):
        day = check_date()
        if not reason:
            fail(call, "请填写延期原因" if action == "request" else "请填写无法按期办结的特殊原因")
        if action == "request":
            call.notes.append({"note": f"承办单位申请延期至{_label(day)}（当前期限{_label(current)}），原因：{reason}",
                               "unit": case.handling_unit, "requested": day.isoformat(), "reason": reason})
            return unchanged
        confirmed = str(call.params.get("confirmed_by") or "").strip()
        if not confirmed:
            fail(call, "约定办结时限须经企业确认：请填写企业确认人")
        call.notes.append({"note": f"与企业约定办结时限至{_label(day)}（原期限{_label(current)}），企业确认人：{confirmed}，"
                                   f"原因：{reason}", "unit": case.handling_unit, "due_date": day.isoformat(),
                           "reason": reason, "confirmed_by": confirmed})
        return {"due_date": day.isoformat()}

    decision = str(call.params.get("decision") or "").strip()
    if decision not in DECISIONS:
        fail(call, f"请选择是否同意延期（{' / '.join(DECISIONS)}）：“{decision}”")
    opinion = str(call.params.get("opinion") or "").strip()
    if decision == "refuse":
        if not opinion:
            fail(call, "不同意延期须说明理由")
        call.notes.append({"note": f"中心不同意延期，办理期限仍为{_label(current)}，理由：{opinion}",
                           "unit": case.handling_unit, "due_date": current.isoformat(), "opinion": opinion})
        return unchanged
    day = check_date()
    call.notes.append({"note": f"中心同意延期至{_label(day)}（原期限{_label(current)}），延期原因：{reason}"
                               + (f"，审批意见：{opinion}" if opinion else ""),
                       "unit": case.handling_unit, "due_date": day.isoformat(), "reason": reason,
                       "opinion": opinion or None})
    return {"due_date": day.isoformat()}
