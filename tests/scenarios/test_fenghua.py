"""Scenario tests of the Fenghua one-place diagram (``processes/fenghua_one_place.bpmn``), path by path.

Cases start only through :func:`handlers.intake.submit_case`, as every real case does; tasks are completed
through the runtime with the forms the diagram defines; deadlines are made to fall due by moving the test
clock (2026-09-30 10:00 Asia/Shanghai, the last working day before National Day) and running the timer
executor. Assertions look at the business rows the handlers write (ledger, case units, supervision, outbox,
ratings), the engine's timer and task rows, and the case history.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from engine.clock import FixedClock, to_utc
from engine.errors import FormValidationError, ServiceTaskError
from engine.models import Event, Instance, Timer
from engine.process_engine import ProcessEngine
from handlers.intake import submit_case
from handlers.models import EnterpriseCase, JointReview, Outbox, Rating, Supervision
from tests.scenarios.conftest import PROCESSES, deploy_process
from tests.scenarios.steps import answer, complete, end_of_day, open_tasks, the_task

KEY = "fenghua_one_place"


# --- helpers ---------------------------------------------------------------------------------------------
def submit(engine: ProcessEngine, channel_mode: str | None = None, **fields: Any) -> int:
    data = {"enterprise_name": "宁波奉化示例机械有限公司", "contact_name": "王经理", "contact_phone": "13805741234",
            "channel": "window_8718", "category": "factor_land", "title": "新厂房用地指标",
            "description": "企业扩产需要新增工业用地，希望了解用地指标和办理流程。"}
    data.update(fields)
    return submit_case(engine, KEY, data, channel_mode=channel_mode).instance_id


def case_row(engine: ProcessEngine, iid: int) -> EnterpriseCase:
    with engine.session() as s:
        row = s.scalar(select(EnterpriseCase).where(EnterpriseCase.instance_id == iid))
        _ = list(row.units)
        s.expunge_all()
        return row


def rows(engine: ProcessEngine, model: type, **where: Any) -> list[Any]:
    with engine.session() as s:
        query = select(model).order_by(model.id)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        found = list(s.scalars(query))
        s.expunge_all()
        return found


def timers(engine: ProcessEngine, iid: int, spec_id: str | None = None) -> list[Timer]:
    found = rows(engine, Timer, instance_id=iid)
    return [t for t in found if spec_id is None or t.spec_id == spec_id]


def waiting(engine: ProcessEngine, iid: int, spec_id: str) -> Timer:
    found = [t for t in timers(engine, iid, spec_id) if t.status == "waiting"]
    assert len(found) == 1, f"expected one waiting {spec_id}: {[(t.spec_id, t.status) for t in timers(engine, iid)]}"
    return found[0]


def events(engine: ProcessEngine, iid: int) -> list[tuple[str, dict[str, Any]]]:
    return [(e.action, json.loads(e.payload)) for e in rows(engine, Event, instance_id=iid)]


def notes(engine: ProcessEngine, iid: int) -> list[str]:
    return [n.get("note", "") for _, p in events(engine, iid) for n in p.get("notes", [])]


def case_case_id(engine: ProcessEngine, iid: int) -> int:
    return case_row(engine, iid).id


def status(engine: ProcessEngine, iid: int) -> str:
    return rows(engine, Instance, id=iid)[0].status


def contact(engine: ProcessEngine, iid: int, route: str, **extra: Any) -> None:
    complete(engine, iid, "Task_Contact", {"contact_record": "已电话联系企业，核实了问题情况。", "route": route,
                                           "opinion": extra.pop("opinion", "按职责分解落实。"), **extra})


def reply_revisit_rate(engine: ProcessEngine, iid: int, satisfaction: str = "满意") -> None:
    """After the answer: the centre revisits, the enterprise rates through its private link."""
    complete(engine, iid, "Task_Revisit", {"revisit_mode": "phone", "revisit_note": "企业确认已收到答复。"})
    rating = the_task(engine, iid, "Task_EnterpriseRating")
    assert rating.candidate_groups == "企业"
    engine.runtime.complete_task(rating.task_guid, {"satisfaction": satisfaction, "rating_comment": "辛苦了"},
                                 actor="企业")


@pytest.fixture
def fh(case_engine: ProcessEngine) -> ProcessEngine:
    deploy_process(case_engine, KEY)
    return case_engine


# --- the diagram itself ----------------------------------------------------------------------------------
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC", "di": "http://www.omg.org/spec/DD/20100524/DI"}


@pytest.mark.req("BP-1", "BP-3")
def test_diagram_has_complete_interchange_lanes_and_documented_timers() -> None:
    root = etree.parse(str(PROCESSES / f"{KEY}.bpmn")).getroot()
    process = root.find("bpmn:process", NS)
    assert process.get("id") == KEY and process.get("isExecutable") == "true"
    shapes = {s.get("bpmnElement"): s.find("dc:Bounds", NS) for s in root.iterfind(".//bpmndi:BPMNShape", NS)}
    edges = {e.get("bpmnElement"): e.findall("di:waypoint", NS) for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    flow_nodes = [n for n in process if etree.QName(n).localname.endswith(("Task", "Event", "Gateway"))]
    assert len(flow_nodes) > 40
    missing = [n.get("id") for n in flow_nodes if n.get("id") not in shapes]
    assert missing == []
    flows = process.findall("bpmn:sequenceFlow", NS)
    assert [f.get("id") for f in flows if len(edges.get(f.get("id"), [])) < 2] == []
    # every flow node sits in exactly one lane, and its shape lies inside that lane's shape
    lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
    assert {lane.get("name") for lane in lanes} == {"中心工作人员", "企服专班", "承办单位", "领导小组", "企业"}
    in_lane = {}
    for lane in lanes:
        lb = shapes[lane.get("id")]
        top, bottom = float(lb.get("y")), float(lb.get("y")) + float(lb.get("height"))
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            assert ref.text not in in_lane
            in_lane[ref.text] = lane.get("name")
            b = shapes[ref.text]
            centre = float(b.get("y")) + float(b.get("height")) / 2
            assert top <= centre <= bottom, f"{ref.text} outside lane {lane.get('name')}"
    assert sorted(in_lane) == sorted(n.get("id") for n in flow_nodes)
    # every user task names its candidate group; it matches its lane
    for user_task in process.iterfind("bpmn:userTask", NS):
        group = user_task.get("{http://camunda.org/schema/1.0/bpmn}candidateGroups")
        assert group == in_lane[user_task.get("id")], user_task.get("id")
    # every timer documents whether passing it interrupts, and why
    timers_ = process.findall("bpmn:boundaryEvent", NS)
    assert len(timers_) == 10  # with the revisit's 1 working day (RC-8), the extension decision's (RC-2) and the sign-off's (RC-3)
    for timer in timers_:
        doc = timer.findtext("bpmn:documentation", namespaces=NS) or ""
        word = "非中断" if timer.get("cancelActivity") == "false" else "中断"
        assert word in doc, timer.get("id")
    # the first element after the start event is the ledger registration
    start = process.find("bpmn:startEvent", NS)
    first_flow = next(f for f in flows if f.get("sourceRef") == start.get("id"))
    first = process.find(f"*[@id='{first_flow.get('targetRef')}']")
    assert first.get("{http://camunda.org/schema/1.0/bpmn}topic") == "ledger"


# --- FH-3 quick answer ------------------------------------------------------------------------------------
@pytest.mark.req("FH-1", "FH-2", "FH-3", "FH-7", "FH-8")
def test_quick_answer_online_channel(fh: ProcessEngine) -> None:
    with pytest.raises(FormValidationError):  # the intake API takes online channels only
        submit(fh, channel_mode="online", channel="window_8718")
    iid = submit(fh, channel_mode="online", channel="yongqima", category="policy_talent", title="人才政策咨询",
                 description="想了解引进高层次人才的补贴政策。")
    case = case_row(fh, iid)
    assert (case.channel, case.category, case.ledger_status, case.unit) == ("yongqima", "policy_talent", "handling",
                                                                            "FH-CENTRE")
    assert case.business_key.startswith("FH-20260930-")
    contact_task = the_task(fh, iid, "Task_Contact")
    assert contact_task.candidate_groups == "中心工作人员"
    assert to_utc(contact_task.due_at) == end_of_day("2026-09-30")  # the day of receipt
    contact(fh, iid, "quick", opinion="情况清楚，现场答复。")
    complete(fh, iid, "Task_QuickReply", {"result": "solved", "reply_mode": "online",
                                          "answer": "可按《奉化区人才新政》申请安家补贴，材料清单已发送。"})
    messages = rows(fh, Outbox, instance_id=iid)
    assert [m.recipient for m in messages] == ["enterprise"]
    assert "安家补贴" in messages[0].body and messages[0].address == "13805741234"
    assert case_row(fh, iid).ledger_status == "answered"
    reply_revisit_rate(fh, iid, "基本满意")
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue, case.satisfaction) == ("closed", False, "基本满意")
    assert [(r.value, r.source) for r in rows(fh, Rating, case_id=case.id)] == [("基本满意", "enterprise")]
    assert case.units == []  # nothing was transferred
    assert status(fh, iid) == "completed"
    assert [t.status for t in timers(fh, iid, "Boundary_ContactDeadline")] == ["cancelled"]


# --- FH-4 single-department transfer ---------------------------------------------------------------------
@pytest.mark.req("FH-4", "FH-8", "WD-1", "BP-2", "BP-3")
def test_transfer_on_time_due_after_national_day_and_closed(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh)
    contact(fh, iid, "transfer", handling_unit="FH-ZRZY", opinion="用地指标由自然资源规划分局答复。")
    case = case_row(fh, iid)
    assert [(u.unit_code, u.role, u.opinion) for u in case.units] == [("FH-ZRZY", "handling",
                                                                       "用地指标由自然资源规划分局答复。")]
    assert case.handling_unit == "FH-ZRZY"
    # received on 2026-09-30, 2 working days: National Day (10-01..10-07) is skipped, 10-08 and 10-09 count
    deadline = waiting(fh, iid, "Boundary_UnitDeadline")
    assert to_utc(deadline.due_at) == end_of_day("2026-10-09")
    assert (deadline.interrupting, deadline.attached_to, deadline.provisional) == (False, "Task_UnitHandle", False)
    unit_task = the_task(fh, iid, "Task_UnitHandle")
    assert unit_task.candidate_groups == "承办单位"
    assert to_utc(unit_task.due_at) == end_of_day("2026-10-09")

    clock.set("2026-10-09T16:00:00")
    assert fh.management.run_due_timers() == 0
    answer(fh, iid, {"result": "solved", "answer": "已纳入年度用地计划，请按清单准备材料。"},
             actor="zrzy_clerk")
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue, case.answered_late) == ("answered", False, False)
    assert [t.status for t in timers(fh, iid, "Boundary_UnitDeadline")] == ["cancelled"]
    reply_revisit_rate(fh, iid, "满意")
    case = case_row(fh, iid)
    assert case.ledger_status == "closed" and case.closed_at is not None  # 销账
    assert rows(fh, Supervision, case_id=case.id) == []
    assert any("销账" in n for n in notes(fh, iid))


@pytest.mark.req("FH-4", "FH-7", "FH-8", "BP-3")
def test_transfer_late_is_chased_once_and_carried_until_satisfied(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh, channel="hotline")
    contact(fh, iid, "transfer", handling_unit="FH-ZJJ")
    clock.set("2026-10-10T00:00:01")  # one second past the limit
    assert fh.management.run_due_timers() == 1
    assert fh.management.run_due_timers() == 0  # a second executor run finds nothing: fired exactly once
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue) == ("carried", True)  # 挂账
    chase = rows(fh, Supervision, case_id=case.id)
    assert [(s.kind, s.unit_code) for s in chase] == [("催办", "FH-ZJJ")]
    fired = [t for t in timers(fh, iid, "Boundary_UnitDeadline")]
    assert [t.status for t in fired] == ["fired"]
    # non-interrupting: the unit still has the case
    the_task(fh, iid, "Task_UnitHandle")
    clock.set("2026-10-13T09:00:00")
    answer(fh, iid, {"result": "solved", "answer": "道路修复已完成。"})
    case = case_row(fh, iid)
    assert (case.ledger_status, case.answered_late) == ("carried", True)  # answered late: still on the books
    reply_revisit_rate(fh, iid, "满意")
    case = case_row(fh, iid)
    assert case.ledger_status == "closed" and case.overdue is True  # the carried case is now closed
    actions = [a for a, _ in events(fh, iid)]
    assert actions.count("timer_fired") == 1


@pytest.mark.req("FH-4", "WD-1", "BP-3")
def test_transfer_with_agreed_date_moves_the_deadline(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh)
    contact(fh, iid, "transfer", handling_unit="FH-SLJ")
    first = waiting(fh, iid, "Boundary_UnitDeadline")
    clock.set("2026-10-09T11:00:00")
    complete(fh, iid, "Task_UnitHandle", {"result": "agree_date", "answer": "需协调上游水库调度，短期内无法办结。"})
    agree = the_task(fh, iid, "Task_AgreeDate")
    with pytest.raises(FormValidationError):  # the date and the reason are both required
        fh.runtime.complete_task(agree.task_guid, {"agreed_date": "2026-10-20"})
    fh.runtime.complete_task(agree.task_guid, {"agreed_date": "2026-10-20", "agreed_reason": "需等待水库调度方案批复",
                                               "agreed_contact": "王经理"}, actor="slj_clerk")
    # the old limit is gone, the new one ends with the agreed day
    assert [t.status for t in timers(fh, iid, "Boundary_UnitDeadline") if t.id == first.id] == ["cancelled"]
    moved = waiting(fh, iid, "Boundary_UnitDeadline")
    assert to_utc(moved.due_at) == end_of_day("2026-10-20")
    assert to_utc(the_task(fh, iid, "Task_UnitHandle").due_at) == end_of_day("2026-10-20")
    # the reason is in the history, with the step that set the new due date
    history = events(fh, iid)
    agreed = [p for a, p in history if a == "task_completed" and p["details"]["form"].get("agreed_reason")]
    assert len(agreed) == 1
    assert agreed[0]["details"]["form"] == {"agreed_date": "2026-10-20", "agreed_reason": "需等待水库调度方案批复",
                                            "agreed_contact": "王经理"}
    assert [(t["element"], t["due_at"]) for t in agreed[0]["timers_scheduled"]] == [
        ("Boundary_UnitDeadline", end_of_day("2026-10-20").isoformat())]
    assert "2026-10-20" in rows(fh, Outbox, instance_id=iid)[-1].body  # the enterprise gets the agreement in writing
    # the original limit passes without a chase
    clock.set("2026-10-12T09:00:00")
    assert fh.management.run_due_timers() == 0
    clock.set("2026-10-20T17:00:00")
    answer(fh, iid, {"result": "solved", "answer": "供水管网已接通。"})
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue, case.answered_late) == ("answered", False, False)


@pytest.mark.req("FH-4")
def test_transfer_to_unknown_or_missing_unit_is_refused_and_changes_nothing(fh: ProcessEngine) -> None:
    iid = submit(fh)
    before = len(events(fh, iid))
    with pytest.raises(ServiceTaskError, match="FH-NOPE"):
        contact(fh, iid, "transfer", handling_unit="FH-NOPE")
    with pytest.raises(ServiceTaskError, match="未指定承办单位编码"):
        contact(fh, iid, "transfer")
    assert len(events(fh, iid)) == before
    the_task(fh, iid, "Task_Contact")
    assert case_row(fh, iid).units == []


# --- FH-5 joint handling -----------------------------------------------------------------------------------
@pytest.mark.req("FH-5", "FH-7", "FH-8", "WD-1", "BP-2", "BP-3")
def test_joint_review_with_invitees_five_days_after_meeting(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh, category="factor_sewage", title="排污管网接入", channel="association")
    contact(fh, iid, "joint", opinion="涉及住建、生态环境两个部门，提请专班商办。")
    organise = the_task(fh, iid, "Task_Organise")
    assert organise.candidate_groups == "企服专班"
    fh.runtime.complete_task(organise.task_guid, {
        "joint_units": "FH-ZJJ,FH-STHJ", "meeting_at": "2026-10-09", "invite_jiwei": True, "invite_zuofeng": False,
        "meeting_minutes": "住建局负责管网接入，生态环境分局负责排污许可。"}, actor="team")
    case = case_row(fh, iid)
    assert sorted((u.unit_code, u.role) for u in case.units) == [("FH-STHJ", "co_handling"),
                                                                 ("FH-ZJJ", "co_handling")]
    review = rows(fh, JointReview, case_id=case.id)
    assert len(review) == 1 and review[0].units == "FH-ZJJ,FH-STHJ" and review[0].invitees == "区纪委区监委"
    # 5 working days after the meeting of Fri 10-09: Sat 10-10 (make-up day), 10-12, 10-13, 10-14, 10-15
    deadline = waiting(fh, iid, "Boundary_JointDeadline")
    assert to_utc(deadline.due_at) == end_of_day("2026-10-15")
    assert to_utc(the_task(fh, iid, "Task_JointHandle").due_at) == end_of_day("2026-10-15")

    # the server is down from 10-09 until the end of November: the deadline fires once when it comes back
    clock.set("2026-11-30T09:00:00")
    fired = fh.management.run_due_timers()
    fired += fh.management.run_due_timers()
    deadline_rows = timers(fh, iid, "Boundary_JointDeadline")
    assert [t.status for t in deadline_rows] == ["fired"]
    assert to_utc(deadline_rows[0].fired_at) == to_utc("2026-11-30T09:00:00")
    fired_events = [p for a, p in events(fh, iid) if a == "timer_fired" and p["details"]["timer"] == deadline.id]
    assert len(fired_events) == 1
    supervision = rows(fh, Supervision, case_id=case.id)
    assert sorted((s.kind, s.unit_code) for s in supervision) == [("督办", "FH-STHJ"), ("督办", "FH-ZJJ")]
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue) == ("carried", True)
    assert fired >= 2  # the deadline and at least one progress reminder
    complete(fh, iid, "Task_JointHandle", {"result": "solved", "answer": "管网已接入，排污许可已核发。",
                                           "unit_results": "FH-ZJJ：管网接入完成；FH-STHJ：许可已核发。"})
    case = case_row(fh, iid)
    assert (case.ledger_status, case.answered_late) == ("carried", True)
    assert not [t for t in timers(fh, iid) if t.status == "waiting" and t.spec_id.startswith("Boundary_Joint")]


@pytest.mark.req("FH-5", "FH-7", "BP-3")
def test_progress_report_on_a_long_joint_case(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh)
    contact(fh, iid, "joint")
    complete(fh, iid, "Task_Organise", {"joint_units": "FH-JXJ、FH-KJJ", "meeting_at": "2026-09-30",
                                        "meeting_minutes": "经信局牵头，科技局配合。"})
    progress = waiting(fh, iid, "Boundary_JointProgress")
    assert progress.kind == "cycle" and to_utc(progress.due_at) == to_utc("2026-10-07T10:00:00")
    clock.set("2026-10-07T10:00:00")
    assert fh.management.run_due_timers() == 1
    report = the_task(fh, iid, "Task_ProgressJoint")
    assert report.candidate_groups == "承办单位"
    the_task(fh, iid, "Task_JointHandle")  # still being handled
    fh.runtime.complete_task(report.task_guid, {"progress": "已完成现场踏勘，正在拟定扶持方案。"}, actor="jxj")
    last = rows(fh, Outbox, instance_id=iid)[-1]
    assert last.recipient == "enterprise" and "现场踏勘" in last.body
    nxt = waiting(fh, iid, "Boundary_JointProgress")
    assert to_utc(nxt.due_at) == to_utc("2026-10-14T10:00:00") and nxt.occurrence == 2
    clock.set("2026-10-09T10:00:00")
    complete(fh, iid, "Task_JointHandle", {"result": "solved", "answer": "扶持资金已拨付。"})
    assert not [t for t in timers(fh, iid) if t.status == "waiting" and t.spec_id == "Boundary_JointProgress"]
    assert case_row(fh, iid).answered_late is False  # 5 working days after 09-30 end on 10-13


# --- FH-6 escalation ---------------------------------------------------------------------------------------
@pytest.mark.req("FH-6", "FH-7", "FH-8", "BP-2")
def test_escalation_to_the_leading_group(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh, category="factor_power", title="园区电力扩容", channel="forum")
    contact(fh, iid, "escalate", opinion="涉及园区整体电力规划，问题重大。")
    analyse = the_task(fh, iid, "Task_Analyse")
    assert analyse.candidate_groups == "企服专班"
    fh.runtime.complete_task(analyse.task_guid, {"analysis": "需新建变电站，投资大、涉及部门多。", "decision": "escalate"},
                             actor="team")
    case = case_row(fh, iid)
    assert case.escalated_to == "FH-LG" and ("FH-LG", "escalated") in [(u.unit_code, u.role) for u in case.units]
    decide = the_task(fh, iid, "Task_DecidePlan")
    assert decide.candidate_groups == "领导小组"
    fh.runtime.complete_task(decide.task_guid, {"plan": "经信局牵头，会同供电公司年内完成扩容。", "lead_unit": "FH-JXJ",
                                                "plan_deadline": "2026-10-30"}, actor="leader")
    case = case_row(fh, iid)
    assert case.handling_unit == "FH-JXJ"
    assert ("FH-JXJ", "handling") in [(u.unit_code, u.role) for u in case.units]
    execute = the_task(fh, iid, "Task_ExecutePlan")
    assert to_utc(execute.due_at) == end_of_day("2026-10-30")
    clock.set("2026-10-07T10:00:01")
    assert fh.management.run_due_timers() == 1  # the weekly progress report, not the plan deadline
    complete(fh, iid, "Task_ProgressPlan", {"progress": "变电站选址已确定。"})
    assert "变电站选址已确定" in rows(fh, Outbox, instance_id=iid)[-1].body
    clock.set("2026-10-28T10:00:00")
    fh.management.run_due_timers()
    for extra in [t for t in open_tasks(fh, iid) if t.spec_id == "Task_ProgressPlan"]:
        fh.runtime.complete_task(extra.task_guid, {"progress": "施工中。"})
    complete(fh, iid, "Task_ExecutePlan", {"result": "solved", "answer": "扩容工程已完成并通电。"})
    reply_revisit_rate(fh, iid, "满意")
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue) == ("closed", False)
    assert rows(fh, Supervision, case_id=case.id) == []


@pytest.mark.req("FH-5", "FH-6")
def test_special_team_analysis_may_turn_an_escalation_into_joint_handling(fh: ProcessEngine) -> None:
    iid = submit(fh)
    contact(fh, iid, "escalate")
    complete(fh, iid, "Task_Analyse", {"analysis": "两个部门协同即可解决，无需上报。", "decision": "joint"})
    the_task(fh, iid, "Task_Organise")
    assert case_row(fh, iid).escalated_to is None


# --- FH-7 outside policy ---------------------------------------------------------------------------------
@pytest.mark.req("FH-7")
def test_outside_policy_request_gets_a_recorded_explanation(fh: ProcessEngine) -> None:
    iid = submit(fh, category="policy_cost", title="申请减免全部税款")
    contact(fh, iid, "transfer", handling_unit="FH-SWJ")
    answer(fh, iid, {
        "result": "outside_policy", "answer": "现行政策不支持全额减免，可申请研发费用加计扣除。"}, actor="swj")
    message = rows(fh, Outbox, instance_id=iid)[-1]
    assert message.recipient == "enterprise"
    assert "不符合现行政策规定" in message.body and "研发费用加计扣除" in message.body
    completed = [e["element"] for _, p in events(fh, iid) for e in p["completed"]]
    assert "Task_ReplyExplain" in completed and "Task_Reply" not in completed
    forms = [p["details"]["form"] for a, p in events(fh, iid) if a == "task_completed"]
    assert {"result": "outside_policy", "answer": "现行政策不支持全额减免，可申请研发费用加计扣除。"} in forms
    assert case_row(fh, iid).ledger_status == "answered"
    reply_revisit_rate(fh, iid)
    assert case_row(fh, iid).ledger_status == "closed"


# --- FH-8 dissatisfied -------------------------------------------------------------------------------------
@pytest.mark.req("FH-7", "FH-8")
def test_dissatisfied_rating_sends_the_case_back_then_satisfied_closes_it(fh: ProcessEngine,
                                                                        clock: FixedClock) -> None:
    iid = submit(fh, channel="web_form")
    contact(fh, iid, "transfer", handling_unit="FH-JTJ")
    clock.set("2026-10-08T10:00:00")
    answer(fh, iid, {"result": "solved", "answer": "已安排巡查。"})
    reply_revisit_rate(fh, iid, "不满意")
    case = case_row(fh, iid)
    # 挂账, and the rating that sent it back is on record; the case waits for a new one
    assert (case.ledger_status, case.satisfaction, case.closed_at) == ("carried", None, None)
    assert [r.value for r in rows(fh, Rating, case_id=case.id)] == ["不满意"]
    assert [m.recipient for m in rows(fh, Outbox, instance_id=iid)][-1] == "督办"  # reported for accountability
    # back into handling: the centre contacts the enterprise again, with a fresh same-day limit
    again = the_task(fh, iid, "Task_Contact")
    assert to_utc(again.due_at) == end_of_day("2026-10-08")
    assert status(fh, iid) == "running"
    clock.set("2026-10-09T09:00:00")
    contact(fh, iid, "transfer", handling_unit="FH-JTJ", opinion="企业不满意，交通局重新办理并现场查看。")
    # the unit's 2 working days count from the new transfer
    assert to_utc(waiting(fh, iid, "Boundary_UnitDeadline").due_at) == end_of_day("2026-10-12")
    answer(fh, iid, {"result": "solved", "answer": "路面已修复，限高架已调整。"})
    assert case_row(fh, iid).ledger_status == "carried"  # answered, but stays on the books until satisfied
    reply_revisit_rate(fh, iid, "不满意")  # dissatisfied a second time: a second rating, a second round
    contact(fh, iid, "transfer", handling_unit="FH-JTJ", opinion="第三轮：局领导带队现场办理。")
    answer(fh, iid, {"result": "solved", "answer": "已彻底整改。"})
    reply_revisit_rate(fh, iid, "满意")
    case = case_row(fh, iid)
    assert (case.ledger_status, case.satisfaction) == ("closed", "满意")
    assert [r.value for r in rows(fh, Rating, case_id=case.id)] == ["不满意", "不满意", "满意"]
    assert status(fh, iid) == "completed"


@pytest.mark.req("FH-7", "BP-3")
def test_centre_records_the_rating_when_the_enterprise_does_not(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh)
    contact(fh, iid, "quick")
    complete(fh, iid, "Task_QuickReply", {"result": "solved", "reply_mode": "on_site", "answer": "已现场答复。"})
    complete(fh, iid, "Task_Revisit", {"revisit_mode": "phone", "revisit_note": "企业表示满意。"})
    timeout = waiting(fh, iid, "Boundary_RatingTimeout")
    assert timeout.interrupting is True
    assert to_utc(timeout.due_at) == end_of_day("2026-10-13")  # 5 working days from 09-30: 10-08 … 10-13
    clock.set("2026-10-14T08:00:00")
    assert fh.management.run_due_timers() == 1
    assert [t.spec_id for t in open_tasks(fh, iid)] == ["Task_ProxyRating"]  # the enterprise's task is withdrawn
    complete(fh, iid, "Task_ProxyRating", {"satisfaction": "满意", "rating_source": "staff"})
    case = case_row(fh, iid)
    assert case.ledger_status == "closed"
    assert [(r.value, r.source) for r in rows(fh, Rating, case_id=case.id)] == [("满意", "staff")]


@pytest.mark.req("FH-4", "FH-7")
def test_centre_is_reminded_when_no_opinion_on_the_day_of_receipt(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh)
    clock.set("2026-10-08T09:00:00")  # the centre left it over the holiday
    assert fh.management.run_due_timers() == 1
    message = rows(fh, Outbox, instance_id=iid)[-1]
    assert message.recipient == "中心工作人员" and "当日" in message.body
    case = case_row(fh, iid)
    assert (case.ledger_status, case.overdue) == ("handling", False)  # a reminder, not a carried case
    the_task(fh, iid, "Task_Contact")


# --- RC-10: office hours ----------------------------------------------------------------------------------------
@pytest.mark.req("RC-10", "FH-4", "WD-1")
def test_a_case_received_after_office_hours_gets_the_next_working_day_for_its_same_day_opinion(
        fh: ProcessEngine, clock: FixedClock) -> None:
    """FH-4's "on the day of receipt" for a hotline call at 23:30 before National Day: the next working day."""
    clock.set("2026-09-30T23:30:00")
    iid = submit(fh, channel="hotline")
    contact_task = the_task(fh, iid, "Task_Contact")
    assert to_utc(contact_task.due_at) == end_of_day("2026-10-08")
    clock.set("2026-10-01T00:00:00")
    assert fh.management.run_due_timers() == 0
    clock.set("2026-10-09T00:00:00")
    assert fh.management.run_due_timers() == 1  # the reminder, one working day late


# --- RC-8: the revisit within a limit after the reply ------------------------------------------------------------
@pytest.mark.req("RC-8", "FH-7", "WD-1")
def test_a_revisit_not_made_within_one_working_day_of_the_reply_is_urged(fh: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(fh)
    contact(fh, iid, "quick", opinion="情况清楚，现场答复。")
    complete(fh, iid, "Task_QuickReply", {"result": "solved", "reply_mode": "online", "answer": "已答复用地流程。"})
    revisit = the_task(fh, iid, "Task_Revisit")
    assert to_utc(revisit.due_at) == end_of_day("2026-10-08")  # the reply on 09-30: the next working day
    assert waiting(fh, iid, "Boundary_Revisit1Day").interrupting is False
    clock.set("2026-10-09T00:00:00")
    assert fh.management.run_due_timers() == 1
    (row,) = rows(fh, Supervision, case_id=case_case_id(fh, iid))
    assert (row.kind, row.unit_code) == ("催办", "FH-CENTRE") and "回访" in row.reason  # the centre revisits
    case = case_row(fh, iid)
    assert case.overdue is False and case.ledger_status == "answered"
    reply_revisit_rate(fh, iid)
    assert case_row(fh, iid).ledger_status == "closed" and status(fh, iid) == "completed"
