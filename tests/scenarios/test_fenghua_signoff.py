"""RC-3 办结审核 on the Fenghua diagram (``processes/fenghua_one_place.bpmn``).

The unit's answer goes to the centre (中心工作人员, 办结审核) before the reply reaches the enterprise. A case
received and transferred on Wed 2026-09-30 10:00 is due at the end of 2026-10-09 (National Day 10-01..10-07
skipped); a send-back does not restart that limit.
"""

from __future__ import annotations

import pytest

from engine.clock import FixedClock, to_utc
from engine.errors import ServiceTaskError
from engine.models import HumanTask
from engine.process_engine import ProcessEngine
from handlers.models import Outbox
from tests.scenarios.steps import complete, end_of_day, the_task
from tests.scenarios.test_fenghua import (
    case_row,
    contact,
    events,
    fh,
    notes,
    reply_revisit_rate,
    rows,
    submit,
    timers,
    waiting,
)

__all__ = ["fh"]  # the fixture, imported for these tests

ANSWER = {"result": "solved", "answer": "已协调供电公司，增容方案本周内实施。"}


def answered(engine: ProcessEngine) -> int:
    """Transferred on 09-30 10:00 (due 10-09), answered by the unit on 09-30 15:00: waiting for the sign-off."""
    iid = submit(engine)
    contact(engine, iid, "transfer", handling_unit="FH-JXJ")
    assert to_utc(waiting(engine, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-09")
    complete(engine, iid, "Task_UnitHandle", ANSWER, actor="jxj_clerk")
    return iid


def sign_off(engine: ProcessEngine, iid: int, decision: str, reason: str = "") -> None:
    task = the_task(engine, iid, "Task_SignOff")
    assert task.candidate_groups == "中心工作人员"
    engine.runtime.complete_task(task.task_guid, {"signoff": decision, "signoff_reason": reason},
                                 actor="centre_clerk")


def replies(engine: ProcessEngine, iid: int) -> list[Outbox]:
    return [m for m in rows(engine, Outbox, instance_id=iid) if m.recipient == "enterprise"]


def _state(engine: ProcessEngine, iid: int) -> tuple[int, list[tuple[int, str]], list[str], int]:
    tasks: list[HumanTask] = rows(engine, HumanTask, instance_id=iid)
    return (len(events(engine, iid)), [(t.id, t.status) for t in timers(engine, iid)],
            [f"{t.spec_id}:{t.task_guid}" for t in tasks], len(rows(engine, Outbox, instance_id=iid)))


@pytest.mark.req("RC-3", "WD-1")
def test_an_approved_answer_goes_on_to_the_enterprise(fh: ProcessEngine, clock: FixedClock) -> None:
    clock.set("2026-09-30T10:00:00")
    iid = answered(fh)
    # the answer waits for the centre: nothing has reached the enterprise, the ledger is not yet 已答复
    before = len(replies(fh, iid))
    assert case_row(fh, iid).ledger_status != "answered"
    assert [t.spec_id for t in rows(fh, HumanTask, instance_id=iid)] == ["Task_SignOff"]
    clock.set("2026-10-08T09:00:00")
    sign_off(fh, iid, "approve")
    assert len(replies(fh, iid)) == before + 1 and "增容方案" in replies(fh, iid)[-1].body
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue, case.answered_late) == ("answered", False, False)
    assert any("中心审核同意" in n for n in notes(fh, iid))
    reply_revisit_rate(fh, iid, "满意")
    assert case_row(fh, iid).ledger_status == "closed"


@pytest.mark.req("RC-3", "WD-1")
def test_a_sent_back_answer_returns_to_the_unit_with_its_deadline_continued_then_approved(
        fh: ProcessEngine, clock: FixedClock) -> None:
    clock.set("2026-09-30T10:00:00")
    iid = answered(fh)
    before = len(replies(fh, iid))
    clock.set("2026-10-08T09:00:00")
    sign_off(fh, iid, "return", "未说明增容的具体时间和责任单位，请补充")
    # back to the unit's 承办单位办理, the limit continued (still 10-09, not 2 working days from today)
    unit = the_task(fh, iid, "Task_UnitHandle")
    assert to_utc(unit.due_at) == end_of_day("2026-10-09")
    first = waiting(fh, iid, "Boundary_UnitDeadline")
    assert to_utc(first.due_at) == end_of_day("2026-10-09")
    assert len(replies(fh, iid)) == before  # nothing reached the enterprise
    # counted: a history detail with the unit, and the case's count
    sent_back = [n for _, p in events(fh, iid) for n in p.get("notes", []) if n.get("sent_back")]
    assert [(n["unit"], n["sent_back_count"], n["reason"]) for n in sent_back] == [
        ("FH-JXJ", 1, "未说明增容的具体时间和责任单位，请补充")]
    # the unit answers again, the centre approves: only now the reply goes out
    complete(fh, iid, "Task_UnitHandle", {**ANSWER, "answer": "供电公司10月9日完成增容，经信局负责跟踪。"},
             actor="jxj_clerk")
    assert len(replies(fh, iid)) == before
    sign_off(fh, iid, "approve")
    assert len(replies(fh, iid)) == before + 1 and "10月9日完成增容" in replies(fh, iid)[-1].body
    assert case_row(fh, iid).ledger_status == "answered"
    assert len([n for _, p in events(fh, iid) for n in p.get("notes", []) if n.get("sent_back")]) == 1
    assert [t.status for t in timers(fh, iid, "Boundary_UnitDeadline")] == ["cancelled", "cancelled"]


@pytest.mark.req("RC-3", "WD-1")
def test_a_send_back_past_the_deadline_is_chased_at_the_original_limit(fh: ProcessEngine,
                                                                       clock: FixedClock) -> None:
    clock.set("2026-09-30T10:00:00")
    iid = answered(fh)
    clock.set("2026-10-09T16:00:00")
    sign_off(fh, iid, "return", "答复不完整")
    clock.set("2026-10-10T00:00:01")
    assert fh.management.run_due_timers() == 1  # the unit's 10-09 limit, not restarted by the send-back
    assert case_row(fh, iid).overdue is True


@pytest.mark.req("RC-3")
def test_a_send_back_without_a_reason_is_refused_and_nothing_changes(fh: ProcessEngine,
                                                                      clock: FixedClock) -> None:
    clock.set("2026-09-30T10:00:00")
    iid = answered(fh)
    before = _state(fh, iid)
    task = the_task(fh, iid, "Task_SignOff")
    for reason in ("", "   "):
        with pytest.raises(ServiceTaskError, match="退回重办须填写退回原因"):
            fh.runtime.complete_task(task.task_guid, {"signoff": "return", "signoff_reason": reason})
        assert _state(fh, iid) == before
    assert the_task(fh, iid, "Task_SignOff").task_guid == task.task_guid
    assert not any(n.get("sent_back") for _, p in events(fh, iid) for n in p.get("notes", []))


@pytest.mark.req("RC-3", "WD-1")
def test_the_centre_is_reminded_when_it_does_not_sign_off_within_one_working_day(
        fh: ProcessEngine, clock: FixedClock) -> None:
    clock.set("2026-09-30T10:00:00")
    iid = answered(fh)
    # answered on the last day before National Day: the centre's day is 10-08
    assert to_utc(waiting(fh, iid, "Boundary_SignOff").due_at) == end_of_day("2026-10-08")
    clock.set("2026-10-09T00:00:01")
    assert fh.management.run_due_timers() == 1
    assert "1个工作日内完成办结审核" in rows(fh, Outbox, instance_id=iid)[-1].body
    sign_off(fh, iid, "approve")  # non-interrupting: the answer still waits for the sign-off
    assert [t.status for t in timers(fh, iid, "Boundary_SignOff")] == ["fired"]
    assert case_row(fh, iid).ledger_status == "answered"
