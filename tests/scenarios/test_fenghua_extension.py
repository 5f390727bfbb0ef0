"""RC-2 延期申请 and the bounded 约定办结时限 on the Fenghua diagram (``processes/fenghua_one_place.bpmn``).

A case received and transferred on Wed 2026-09-30 10:00 is due at the end of 2026-10-09: National Day
(10-01..10-07) is skipped. The longest a deadline may move is 10 working days past that original limit
(``max_days`` of the diagram's ``deadline`` tasks): 10-10 (make-up Saturday), 10-12..10-16, 10-19..10-22,
so 2026-10-22.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.clock import FixedClock, to_utc
from engine.errors import FormValidationError, ServiceTaskError
from engine.models import HumanTask
from engine.process_engine import ProcessEngine
from handlers.models import Outbox, Supervision
from tests.scenarios.steps import complete, end_of_day, the_task
from tests.scenarios.test_fenghua import case_row, contact, events, fh, notes, rows, submit, timers, waiting

__all__ = ["fh"]  # the fixture, imported for these tests

REQUEST = {"result": "extend", "answer": "需等待市级部门答复，期限内无法办结。", "extension_date": "2026-10-16",
           "extension_reason": "需市自然资源规划局出具用地预审意见"}


def transferred(engine: ProcessEngine) -> int:
    iid = submit(engine)
    contact(engine, iid, "transfer", handling_unit="FH-ZRZY")
    assert to_utc(waiting(engine, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-09")
    return iid


def request(engine: ProcessEngine, iid: int, **changes: Any) -> None:
    complete(engine, iid, "Task_UnitHandle", {**REQUEST, **changes}, actor="zrzy_clerk")


def decide(engine: ProcessEngine, iid: int, decision: str, opinion: str = "") -> None:
    task = the_task(engine, iid, "Task_ExtensionDecision")
    assert task.candidate_groups == "中心工作人员"
    engine.runtime.complete_task(task.task_guid, {"extension_decision": decision, "extension_opinion": opinion},
                                 actor="centre_clerk")


@pytest.mark.req("RC-2", "WD-1")
def test_an_approved_extension_moves_the_timer_and_the_chase_comes_at_the_new_date(
        fh: ProcessEngine, clock: FixedClock) -> None:
    iid = transferred(fh)
    first = waiting(fh, iid, "Boundary_UnitDeadline")
    clock.set("2026-10-08T09:00:00")
    request(fh, iid)
    # the centre decides; the unit's task and its timer wait for the decision
    assert [t.status for t in timers(fh, iid, "Boundary_UnitDeadline")] == ["cancelled"]
    decide(fh, iid, "approve", "同意，请按期办结")
    moved = waiting(fh, iid, "Boundary_UnitDeadline")
    assert moved.id != first.id and to_utc(moved.due_at) == end_of_day("2026-10-16")
    assert to_utc(the_task(fh, iid, "Task_UnitHandle").due_at) == end_of_day("2026-10-16")
    # recorded with the reason, next to the step that scheduled the new timer
    approved = [p for a, p in events(fh, iid) if a == "task_completed"
                and any("同意延期" in n.get("note", "") for n in p.get("notes", []))]
    assert len(approved) == 1
    assert any("2026年10月16日" in n["note"] and "用地预审意见" in n["reason"] for n in approved[0]["notes"])
    assert [(t["element"], t["due_at"]) for t in approved[0]["timers_scheduled"]] == [
        ("Boundary_UnitDeadline", end_of_day("2026-10-16").isoformat())]
    assert any("申请延期至2026年10月16日" in n for n in notes(fh, iid))
    # the old limit passes without a chase
    clock.set("2026-10-10T00:00:01")
    assert fh.management.run_due_timers() == 0
    assert (case_row(fh, iid).overdue, rows(fh, Supervision, case_id=case_row(fh, iid).id)) == (False, [])
    # the new one is chased
    clock.set("2026-10-17T00:00:01")
    assert fh.management.run_due_timers() == 1
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue) == ("carried", True)
    assert [(s.kind, s.unit_code) for s in rows(fh, Supervision, case_id=case.id)] == [("催办", "FH-ZRZY")]
    the_task(fh, iid, "Task_UnitHandle")  # non-interrupting: the unit keeps the case


@pytest.mark.req("RC-2", "WD-1")
def test_the_centre_is_reminded_when_it_does_not_decide_within_one_working_day(
        fh: ProcessEngine, clock: FixedClock) -> None:
    iid = transferred(fh)
    clock.set("2026-09-30T15:00:00")
    request(fh, iid, extension_date="2026-10-12")
    # asked on the last day before National Day: the centre's day is 10-08
    assert to_utc(waiting(fh, iid, "Boundary_ExtensionDecision").due_at) == end_of_day("2026-10-08")
    clock.set("2026-10-09T00:00:01")
    assert fh.management.run_due_timers() == 1
    assert "延期申请应在1个工作日内审批" in rows(fh, Outbox, instance_id=iid)[-1].body
    decide(fh, iid, "approve")  # non-interrupting: the request still waits for the decision
    assert [t.status for t in timers(fh, iid, "Boundary_ExtensionDecision")] == ["fired"]
    assert to_utc(waiting(fh, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-12")


@pytest.mark.req("RC-2", "WD-1")
def test_a_refused_extension_keeps_the_old_deadline(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = transferred(fh)
    clock.set("2026-10-08T09:00:00")
    request(fh, iid)
    with pytest.raises(ServiceTaskError, match="不同意延期须说明理由"):
        decide(fh, iid, "refuse")
    the_task(fh, iid, "Task_ExtensionDecision")  # still open: nothing changed
    decide(fh, iid, "refuse", "材料齐全，可在原期限内办结")
    assert to_utc(waiting(fh, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-09")
    assert any("不同意延期，办理期限仍为2026年10月9日" in n and "材料齐全" in n for n in notes(fh, iid))
    clock.set("2026-10-10T00:00:01")
    assert fh.management.run_due_timers() == 1
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue) == ("carried", True)


def _state(engine: ProcessEngine, iid: int) -> tuple[int, list[tuple[int, str]], list[str]]:
    tasks: list[HumanTask] = rows(engine, HumanTask, instance_id=iid)
    return (len(events(engine, iid)), [(t.id, t.status) for t in timers(engine, iid)],
            [f"{t.spec_id}:{t.task_guid}" for t in tasks])


@pytest.mark.req("RC-2", "WD-1")
@pytest.mark.parametrize(("changes", "message"), [
    ({"extension_date": "2026-10-07"}, "2026年10月7日早于今天（2026年10月8日），不能选择已过去的日期"),
    ({"extension_date": "2026-10-05"}, "早于今天"),
    ({"extension_date": "2026-10-09"}, "延期日期2026年10月9日须晚于当前办理期限2026年10月9日"),
    ({"extension_date": "2026-10-23"}, "超过最长期限：最多在原办理期限2026年10月9日后延长10个工作日，即不晚于2026年10月22日"),
    ({"extension_date": ""}, "请填写延期日期"),
    ({"extension_reason": ""}, "请填写延期原因"),
])
def test_bad_extension_dates_are_refused_in_chinese_and_change_nothing(
        fh: ProcessEngine, clock: FixedClock, changes: dict[str, str], message: str) -> None:
    iid = transferred(fh)
    clock.set("2026-10-08T09:00:00")
    before = _state(fh, iid)
    with pytest.raises(ServiceTaskError, match=message):
        request(fh, iid, **changes)
    assert _state(fh, iid) == before
    assert to_utc(waiting(fh, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-09")
    # the longest allowed date is accepted
    request(fh, iid, extension_date="2026-10-22", extension_reason="需市自然资源规划局出具用地预审意见")
    decide(fh, iid, "approve")
    assert to_utc(waiting(fh, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-22")


@pytest.mark.req("RC-2")
def test_a_request_during_the_holiday_must_still_end_after_the_deadline(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = transferred(fh)
    clock.set("2026-10-03T10:00:00")  # National Day: the deadline is still 10-09
    with pytest.raises(ServiceTaskError, match="须晚于当前办理期限2026年10月9日"):
        request(fh, iid, extension_date="2026-10-08")
    request(fh, iid, extension_date="2026-10-12")
    decide(fh, iid, "approve")
    assert to_utc(waiting(fh, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-12")


@pytest.mark.req("RC-2")
def test_a_request_after_the_deadline_has_passed_is_refused(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = transferred(fh)
    clock.set("2026-10-10T09:00:00")
    assert fh.management.run_due_timers() == 1  # chased and carried
    before = _state(fh, iid)
    with pytest.raises(ServiceTaskError, match="办理期限2026年10月9日已过，不能再申请延期或约定办结时限"):
        request(fh, iid, extension_date="2026-10-16")
    assert _state(fh, iid) == before
    # nor can the unit turn to an agreed date instead: refused before it leaves its task
    with pytest.raises(ServiceTaskError, match="办理期限2026年10月9日已过"):
        complete(fh, iid, "Task_UnitHandle", {"result": "agree_date", "answer": "需协调，短期内无法办结。"})
    assert _state(fh, iid) == before
    the_task(fh, iid, "Task_UnitHandle")


@pytest.mark.req("RC-2", "FH-4")
def test_an_agreed_date_is_bounded_and_confirmed_by_the_enterprise(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = transferred(fh)
    clock.set("2026-10-08T09:00:00")
    complete(fh, iid, "Task_UnitHandle", {"result": "agree_date", "answer": "需协调上游水库调度，短期内无法办结。"})
    agree = the_task(fh, iid, "Task_AgreeDate")
    form = {"agreed_date": "2026-10-20", "agreed_reason": "需等待水库调度方案批复", "agreed_contact": "王经理"}
    with pytest.raises(FormValidationError):  # the enterprise's confirmation is required
        fh.runtime.complete_task(agree.task_guid, {**form, "agreed_contact": ""})
    before = _state(fh, iid)
    for day, message in (("2026-10-23", "约定办结日期2026年10月23日超过最长期限"),
                         ("2026-10-01", "早于今天"), ("2026-10-09", "须晚于当前办理期限2026年10月9日")):
        with pytest.raises(ServiceTaskError, match=message):
            fh.runtime.complete_task(agree.task_guid, {**form, "agreed_date": day})
        assert _state(fh, iid) == before
    fh.runtime.complete_task(agree.task_guid, form, actor="zrzy_clerk")
    assert to_utc(waiting(fh, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-20")
    assert any("与企业约定办结时限至2026年10月20日" in n and "企业确认人：王经理" in n for n in notes(fh, iid))
    assert "2026-10-20" in rows(fh, Outbox, instance_id=iid)[-1].body
    # a later extension request is bounded by the agreed date and the same maximum
    with pytest.raises(ServiceTaskError, match="须晚于当前办理期限2026年10月20日"):
        request(fh, iid, extension_date="2026-10-19")
    request(fh, iid, extension_date="2026-10-22")
    decide(fh, iid, "approve")
    assert to_utc(waiting(fh, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-22")
