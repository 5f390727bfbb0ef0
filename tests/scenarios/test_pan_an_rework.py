"""RC-7 on Pan'an (``processes/pan_an_station.bpmn``): a 不满意 rating is verified (核实不满意, 企业综合服务办公室);
a justified one goes back for rework to whoever handled the case (window / 代办 / 诉求服务板块) within 3 working
days (a 督办 when missed) and is revisited at 100 %; the second justified 不满意 escalates to the 诉求服务板块;
an unjustified one closes with the reason recorded. Test clock: 2026-09-30 10:00 Shanghai, the last working day
before National Day (working days after it: 10-08, 10-09, the make-up Saturday 10-10, 10-12 …).
"""

from __future__ import annotations

import pytest

from engine.errors import FormValidationError
from engine.process_engine import ProcessEngine
from handlers.models import Rating, RevisitDraw, Supervision
from tests.scenarios.conftest import deploy_process
from tests.scenarios.steps import complete, end_of_day, open_tasks, the_task
from tests.scenarios.test_pan_an import (
    PROCESS,
    case_row,
    classify,
    history,
    instance_status,
    rows,
    submit,
    supervisions,
    through_agency,
    timers,
)


@pytest.fixture
def pa(case_engine: ProcessEngine) -> ProcessEngine:
    deploy_process(case_engine, PROCESS)
    return case_engine


def dissatisfied_after_agency(engine: ProcessEngine) -> int:
    """A 疑难 case (revisited at 100 %) the 代办服务板块 solved, rated 不满意 at the revisit."""
    iid = submit(engine)
    classify(engine, iid, "difficult")
    through_agency(engine, iid, "resolved", "已协调办理用地手续")
    complete(engine, iid, "Task_Feedback", {"feedback": "您反映的问题已办结。"}, actor="受理员")
    complete(engine, iid, "Task_Revisit", {"satisfaction": "不满意", "revisit_notes": "手续仍未办下来"}, actor="办公室")
    return iid


@pytest.mark.req("RC-7", "PA-8")
def test_justified_dissatisfaction_is_reworked_by_the_agency_and_revisited_at_100_percent(pa: ProcessEngine) -> None:
    iid = dissatisfied_after_agency(pa)
    verify = the_task(pa, iid, "Task_VerifyDissatisfied")
    assert verify.candidate_groups == "企业综合服务办公室"
    complete(pa, iid, "Task_VerifyDissatisfied", {"verify_result": "justified", "verify_reason": "用地手续确未办结"},
             actor="办公室")
    rework = the_task(pa, iid, "Task_Rework")
    assert rework.candidate_groups == "代办服务板块"  # whoever handled the case reworks it
    assert rework.due_at is not None and rework.due_at.replace(tzinfo=None) == end_of_day("2026-10-10").replace(
        tzinfo=None)
    row = case_row(pa, iid)
    assert row.ledger_status == "carried" and row.closed_at is None
    complete(pa, iid, "Task_Rework", {"rework_answer": "已补办用地预审"}, actor="代办员")
    # revisited again at 100 %: no new sampling draw, the revisit task is open at once
    assert len(rows(pa, RevisitDraw, iid)) == 1
    assert the_task(pa, iid, "Task_Revisit").candidate_groups == "企业综合服务办公室"
    complete(pa, iid, "Task_Revisit", {"satisfaction": "满意"}, actor="办公室")
    row = case_row(pa, iid)
    assert row.ledger_status == "closed" and row.satisfaction == "满意"
    assert instance_status(pa, iid) == "completed"
    assert [r.value for r in rows(pa, Rating, iid)] == ["不满意", "满意"]
    notes = [n.get("note", "") for _, _, p in history(pa, iid) for n in p.get("notes", []) if isinstance(n, dict)]
    assert any("不满意核实：属实" in n and "用地手续确未办结" in n for n in notes)


@pytest.mark.req("RC-7")
def test_a_second_justified_dissatisfaction_escalates_to_the_appeal_panel(pa: ProcessEngine) -> None:
    iid = dissatisfied_after_agency(pa)
    complete(pa, iid, "Task_VerifyDissatisfied", {"verify_result": "justified", "verify_reason": "确未办结"})
    complete(pa, iid, "Task_Rework", {"rework_answer": "已补办"}, actor="代办员")
    complete(pa, iid, "Task_Revisit", {"satisfaction": "不满意", "revisit_notes": "仍不满意"}, actor="办公室")
    complete(pa, iid, "Task_VerifyDissatisfied", {"verify_result": "justified", "verify_reason": "整改不到位"})
    assert the_task(pa, iid, "Task_Rework").candidate_groups == "诉求服务板块"
    assert case_row(pa, iid).ledger_status == "carried"
    complete(pa, iid, "Task_Rework", {"rework_answer": "诉求服务板块协调办结"}, actor="诉求员")
    complete(pa, iid, "Task_Revisit", {"satisfaction": "基本满意"}, actor="办公室")
    assert case_row(pa, iid).ledger_status == "closed" and instance_status(pa, iid) == "completed"
    assert [r.value for r in rows(pa, Rating, iid)] == ["不满意", "不满意", "基本满意"]


@pytest.mark.req("RC-7")
def test_a_complaint_reworks_in_the_appeal_panel_and_unjustified_closes_with_the_reason(pa: ProcessEngine) -> None:
    iid = submit(pa, channel="walk_in")
    classify(pa, iid, "complaint")
    complete(pa, iid, "Task_Appeal", {"scope": "area", "outcome": "resolved", "answer": "投诉已核实处理"})
    complete(pa, iid, "Task_Feedback", {"feedback": "投诉已处理"})
    complete(pa, iid, "Task_Revisit", {"satisfaction": "不满意", "revisit_notes": "企业要求超出政策"}, actor="办公室")
    complete(pa, iid, "Task_VerifyDissatisfied",
             {"verify_result": "unjustified", "verify_reason": "企业诉求超出现行政策，已当面解释"}, actor="办公室")
    row = case_row(pa, iid)
    assert row.ledger_status == "closed" and row.closed_at is not None and row.satisfaction == "不满意"
    assert instance_status(pa, iid) == "completed"
    assert not [t for t in open_tasks(pa, iid)]
    notes = [n for _, _, p in history(pa, iid) for n in p.get("notes", []) if isinstance(n, dict)]
    assert any(n.get("verify_result") == "unjustified" and n.get("verify_reason") == "企业诉求超出现行政策，已当面解释"
               for n in notes)


@pytest.mark.req("RC-7")
def test_verification_without_a_reason_is_refused_and_changes_nothing(pa: ProcessEngine) -> None:
    iid = dissatisfied_after_agency(pa)
    task = the_task(pa, iid, "Task_VerifyDissatisfied")
    before = len(history(pa, iid))
    with pytest.raises(FormValidationError) as err:
        pa.runtime.complete_task(task.task_guid, {"verify_result": "justified"}, actor="办公室")
    assert "verify_reason" in err.value.errors
    with pytest.raises(Exception) as blank:  # only blanks: the handler refuses in Chinese, the step rolls back
        pa.runtime.complete_task(task.task_guid, {"verify_result": "unjustified", "verify_reason": "   "},
                                 actor="办公室")
    assert "核实理由" in str(blank.value)
    assert the_task(pa, iid, "Task_VerifyDissatisfied").task_guid == task.task_guid
    assert len(history(pa, iid)) == before
    row = case_row(pa, iid)
    assert row.ledger_status != "closed" and row.closed_at is None


@pytest.mark.req("RC-7", "PA-9", "WD-1")
def test_rework_limit_crossing_national_day_raises_one_supervision_when_missed(pa: ProcessEngine) -> None:
    iid = dissatisfied_after_agency(pa)  # 2026-09-30 10:00
    complete(pa, iid, "Task_VerifyDissatisfied", {"verify_result": "justified", "verify_reason": "确未办结"})
    assert supervisions(pa, iid) == []
    (timer,) = [t for t in timers(pa, iid) if t.spec_id == "Boundary_Rework3Days" and t.status != "fired"]
    pa.clock.set("2026-10-10T23:59:58")  # 10-08, 10-09 and the make-up Saturday 10-10: still in time
    assert pa.management.run_due_timers() == 0
    pa.clock.set("2026-10-11T08:00:00")
    assert pa.management.run_due_timers() == 1
    ((kind, reason),) = supervisions(pa, iid)
    assert kind == "督办" and "整改" in reason
    assert the_task(pa, iid, "Task_OfficeSupervise").candidate_groups == "企业综合服务办公室"
    assert the_task(pa, iid, "Task_Rework")  # non-interrupting: the rework goes on
    assert pa.management.run_due_timers() == 0
    assert len(rows(pa, Supervision, iid)) == 1
    complete(pa, iid, "Task_Rework", {"rework_answer": "已补办"}, actor="代办员")
    complete(pa, iid, "Task_Revisit", {"satisfaction": "满意"}, actor="办公室")
    assert case_row(pa, iid).ledger_status == "closed"
