"""Scenario tests of the Pan'an station diagram (``processes/pan_an_station.bpmn``), one per path.

磐365中心〔2024〕4号: one window accepts (综合受理板块), the 代办服务板块 handles jointly with the station's N
panels, what it cannot solve goes to the 诉求服务板块, point/chain problems it cannot handle go to the county
centre's 兜底服务板块 (难事办理窗口); limits "1·3·5" (same day, 3 and 5 working days, 30 for a plan); revisits
20 % / 100 %. Every case starts through ``handlers.intake.submit_case`` and moves only by completing tasks and
firing due timers with the test clock (2026-09-30 10:00 Shanghai, the last working day before National Day:
working days after it are 10-08, 10-09, the make-up Saturday 10-10, 10-12, 10-13 …).

Assertions look at the domain rows the handlers write (``enterprise_case``, ``revisit_draw``, ``supervision``,
``outbox``, ``joint_review``), the engine's task and timer rows and the history events, not only task names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from engine.clock import FixedClock, to_utc
from engine.models import Deployment, Event, Instance, Timer
from engine.process_engine import ProcessEngine
from handlers.intake import submit_case
from handlers.models import CaseUnit, EnterpriseCase, JointReview, Outbox, Rating, RevisitDraw, Supervision
from handlers.revisit import draw_for, keys_at
from tests.scenarios.conftest import deploy_process
from tests.scenarios.steps import complete, end_of_day, open_tasks, the_task

PROCESS = "pan_an_station"
FIELDS = {
    "unit": "PA01", "channel": "visit", "enterprise_name": "磐安县安文药业有限公司", "contact_name": "陈立",
    "contact_phone": "13857900001", "title": "厂房扩建用地手续", "description": "企业走访时反映：厂房扩建需办理用地手续，不清楚流程。",
}
ROLES = {"综合受理板块", "代办服务板块", "诉求服务板块", "兜底服务板块", "企业综合服务办公室"}

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NS = {"bpmn": BPMN, "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC", "di": "http://www.omg.org/spec/DD/20100524/DI",
      "camunda": "http://camunda.org/schema/1.0/bpmn"}
FLOW_NODE_TAGS = {"startEvent", "endEvent", "boundaryEvent", "userTask", "serviceTask", "exclusiveGateway",
                  "parallelGateway", "inclusiveGateway", "intermediateCatchEvent", "intermediateThrowEvent",
                  "subProcess"}


# --- helpers ---------------------------------------------------------------------------------------------
@pytest.fixture
def pa(case_engine: ProcessEngine) -> ProcessEngine:
    deploy_process(case_engine, PROCESS)
    return case_engine


def submit(engine: ProcessEngine, **overrides: Any) -> int:
    return submit_case(engine, PROCESS, {**FIELDS, **overrides}).instance_id


def case_row(engine: ProcessEngine, iid: int) -> EnterpriseCase:
    with engine.session() as s:
        row = s.scalar(select(EnterpriseCase).where(EnterpriseCase.instance_id == iid))
        assert row is not None
        s.expunge(row)
        return row


def rows(engine: ProcessEngine, model: type, iid: int) -> list[Any]:
    """Domain rows of one case (models keyed by case_id, or by instance_id for the outbox)."""
    with engine.session() as s:
        if model is Outbox:
            query = select(Outbox).where(Outbox.instance_id == iid)
        else:
            case_id = s.scalar(select(EnterpriseCase.id).where(EnterpriseCase.instance_id == iid))
            query = select(model).where(model.case_id == case_id)
        out = list(s.scalars(query.order_by(model.id)))
        s.expunge_all()
        return out


def supervisions(engine: ProcessEngine, iid: int) -> list[tuple[str, str]]:
    """(kind, reason) of the case's 督办/催办: one row per responsible unit, and here that is the station."""
    found: list[tuple[str, str]] = []
    for row in rows(engine, Supervision, iid):
        assert row.unit_code == "PA01"  # the station stays answerable while its panels handle the case
        assert (row.kind, row.reason) not in found, "the station got the same 督办 twice"
        found.append((row.kind, row.reason))
    return found


def timers(engine: ProcessEngine, iid: int) -> list[Timer]:
    with engine.session() as s:
        out = list(s.scalars(select(Timer).where(Timer.instance_id == iid).order_by(Timer.id)))
        s.expunge_all()
        return out


def history(engine: ProcessEngine, iid: int) -> list[tuple[str, str | None, dict[str, Any]]]:
    with engine.session() as s:
        return [(e.action, e.spec_id, json.loads(e.payload))
                for e in s.scalars(select(Event).where(Event.instance_id == iid).order_by(Event.seq))]


def completed_elements(engine: ProcessEngine, iid: int) -> list[str]:
    """Every BPMN element completed so far, in the order the history recorded them."""
    return [c["element"] for _, _, p in history(engine, iid) for c in p.get("completed", [])]


def instance_status(engine: ProcessEngine, iid: int) -> str:
    with engine.session() as s:
        return s.get(Instance, iid).status


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def classify(engine: ProcessEngine, iid: int, classification: str, scope: str = "area") -> None:
    complete(engine, iid, "Task_Classify", {"classification": classification, "scope": scope,
                                            "notes": "综合受理板块研判"}, actor="受理员")


def through_agency(engine: ProcessEngine, iid: int, outcome: str, answer: str = "已联动办理") -> None:
    complete(engine, iid, "Task_AgencyAssess", {"joint_panels": "招商服务板块、经济发展服务板块",
                                                "opinion": "联动站内板块"}, actor="代办员")
    complete(engine, iid, "Task_AgencyHandle", {"outcome": outcome, "answer": answer}, actor="代办员")


def feedback_and_finish(engine: ProcessEngine, iid: int, text: str = "您反映的问题已办结。",
                        satisfaction: str = "满意") -> None:
    """统一反馈, then the revisit if the case was drawn."""
    complete(engine, iid, "Task_Feedback", {"feedback": text}, actor="受理员")
    if any(t.spec_id == "Task_Revisit" for t in open_tasks(engine, iid)):
        complete(engine, iid, "Task_Revisit", {"satisfaction": satisfaction, "revisit_notes": "电话回访"},
                 actor="办公室")


# --- the diagram ---------------------------------------------------------------------------------------------
@pytest.mark.req("BP-1", "PA-3", "BP-2")
def test_deployed_diagram_has_lanes_forms_and_di_for_every_flow_node(pa: ProcessEngine) -> None:
    with pa.session() as s:
        dep = s.scalar(select(Deployment).where(Deployment.process_key == PROCESS))
        xml = dep.xml.encode("utf-8")
    root = etree.fromstring(xml)
    process = root.find("bpmn:process", NS)
    assert process.get("isExecutable") == "true"
    nodes = {el.get("id"): el for el in process if etree.QName(el).localname in FLOW_NODE_TAGS}
    inner = {el.get("id"): (el, sub.get("id")) for sub in process.iterfind("bpmn:subProcess", NS)
             for el in sub.iter() if etree.QName(el).localname in FLOW_NODE_TAGS and el is not sub}
    flows = process.findall(".//bpmn:sequenceFlow", NS)
    shapes = {sh.get("bpmnElement"): sh for sh in root.iterfind(".//bpmndi:BPMNShape", NS)}
    edges = {ed.get("bpmnElement"): ed for ed in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    assert len(nodes) > 40 and len(flows) > 40
    assert not [n for n in [*nodes, *inner] if n not in shapes], "flow nodes without a BPMNShape"
    for fid in (f.get("id") for f in flows):
        assert fid in edges and len(edges[fid].findall("di:waypoint", NS)) >= 2, fid
    lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
    participant = root.find("bpmn:collaboration/bpmn:participant", NS)
    assert participant.get("processRef") == PROCESS and participant.get("id") in shapes
    assert all(lane.get("id") in shapes for lane in lanes)
    lane_of = {ref.text: lane.get("name") for lane in lanes for ref in lane.findall("bpmn:flowNodeRef", NS)}
    assert set(lane_of) == set(nodes), "every flow node (boundary events too) lies in exactly one lane"
    # what a subprocess contains lies in the subprocess's lane (bpmn-js keeps no lane reference for it)
    lane_of.update({nid: lane_of[sub] for nid, (_, sub) in inner.items()})
    # PA-3: the panels are lanes and roles; each user task is offered to the role of the lane it is drawn in.
    for el in [*nodes.values(), *(el for el, _ in inner.values())]:
        if etree.QName(el).localname == "userTask":
            group = el.get(f"{{{NS['camunda']}}}candidateGroups")
            if el.get("id") == "Task_Rework":  # RC-7: offered to the panel that handled the case, a role too
                from handlers.rework import ESCALATE_GROUP, HANDLED_BY
                assert group == "${rework_group}" and {*HANDLED_BY.values(), ESCALATE_GROUP} <= ROLES
                continue
            assert group in ROLES and group in lane_of[el.get("id")], el.get("id")
    # the first element after the start is the ledger registration (docs/domain.md)
    start = process.find("bpmn:startEvent", NS)
    first = next(f.get("targetRef") for f in flows if f.get("sourceRef") == start.get("id"))
    assert nodes[first].get(f"{{{NS['camunda']}}}topic") == "ledger"
    # BP-2: transfer, joint review and escalation handlers are referenced by topic
    topics = {el.get(f"{{{NS['camunda']}}}topic") for el in [*nodes.values(), *(el for el, _ in inner.values())]}
    assert {"ledger", "transfer", "joint_review", "escalate", "revisit_sample", "notify", "supervise"} <= topics
    # every deadline is a timer whose choice (interrupting or not) is documented on it
    timers_ = [el for el in nodes.values() if el.find("bpmn:timerEventDefinition", NS) is not None]
    assert len(timers_) == 7  # 当日, the agency's 3 days (on its subprocess), 5, 30, the county's 5, the revisit's 1 (RC-8), the rework's 3 (RC-7)
    for el in timers_:
        assert "中断" in el.findtext("bpmn:documentation", "", NS), el.get("id")


# --- simple: answered on the spot ---------------------------------------------------------------------------
@pytest.mark.req("PA-1", "PA-2", "PA-6", "PA-7", "WD-1")
def test_simple_problem_is_answered_on_the_spot_the_same_day(pa: ProcessEngine) -> None:
    iid = submit(pa)
    events = history(pa, iid)
    assert events[0][0] == "started"
    assert [c["element"] for c in events[0][2]["completed"]][:2] == ["StartEvent_Intake", "Task_RegisterLedger"]
    row = case_row(pa, iid)
    assert (row.unit, row.ledger_status, row.region) == ("PA01", "handling", "pan_an")  # PA-1, PA-7
    assert the_task(pa, iid, "Task_Classify").candidate_groups == "综合受理板块"  # PA-2: one window

    classify(pa, iid, "simple")
    answer = the_task(pa, iid, "Task_AnswerOnSpot")
    assert answer.candidate_groups == "综合受理板块"
    assert utc(answer.due_at) == end_of_day("2026-09-30")  # 不过夜: the end of the day of receipt
    (timer,) = [t for t in timers(pa, iid) if t.status == "waiting"]
    assert (timer.spec_id, timer.interrupting, utc(timer.due_at)) == ("Boundary_SameDay", True, end_of_day("2026-09-30"))

    pa.clock.set("2026-09-30T16:30:00")
    complete(pa, iid, "Task_AnswerOnSpot", {"feedback": "用地手续可在县自然资源局窗口办理，材料清单已告知。"}, actor="受理员")
    statuses = {t.spec_id: t.status for t in timers(pa, iid)}
    assert statuses.pop("Boundary_SameDay") == "cancelled"
    assert set(statuses) <= {"Boundary_Revisit1Day"}  # only when the 20 % draw sampled the case (RC-8)
    (message,) = rows(pa, Outbox, iid)
    assert message.recipient == "enterprise" and message.address == FIELDS["contact_phone"]
    assert "材料清单已告知" in message.body
    row = case_row(pa, iid)
    assert row.classification == "simple" and not row.overdue and row.answered_late is False
    assert utc(row.answered_at) == to_utc("2026-09-30T16:30:00")
    elements = completed_elements(pa, iid)
    assert "Task_Feedback" not in elements and "Task_TransferAgency" not in elements
    assert elements.index("Task_AnswerOnSpot") < elements.index("Task_NotifyEnterprise") \
        < elements.index("Task_LedgerAnswered") < elements.index("Task_RevisitSample")


# --- complex: 代办 within 3 working days ---------------------------------------------------------------------
@pytest.mark.req("PA-4", "PA-6", "WD-1", "BP-2", "BP-3")
def test_complex_problem_is_solved_by_the_agency_panel_within_3_working_days(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "complex")
    row = case_row(pa, iid)
    assert row.handling_unit == "PA01" and row.transferred_at is not None  # transfer handler ran
    assess = the_task(pa, iid, "Task_AgencyAssess")
    assert assess.candidate_groups == "代办服务板块"
    # 3 working days from Wednesday 2026-09-30 cross National Day and end on the make-up Saturday
    assert utc(assess.due_at) == end_of_day("2026-10-10")
    waiting = [t for t in timers(pa, iid) if t.status == "waiting"]
    assert [(t.spec_id, t.interrupting, utc(t.due_at)) for t in waiting] == [
        ("Boundary_Agency3Days", False, end_of_day("2026-10-10"))]

    pa.clock.set("2026-10-08T09:00:00")
    complete(pa, iid, "Task_AgencyAssess", {"joint_panels": "招商服务板块,规划建设服务板块,县企业综合服务中心项目服务板块"},
             actor="代办员")
    (review,) = rows(pa, JointReview, iid)
    assert review.units == "PA01" and "规划建设服务板块" in review.invitees and "项目服务板块" in review.invitees
    assert [(u.unit_code, u.role) for u in rows(pa, CaseUnit, iid)] == [("PA01", "handling"), ("PA01", "co_handling")]
    handle = the_task(pa, iid, "Task_AgencyHandle")
    assert utc(handle.due_at) == end_of_day("2026-10-10")  # the same limit, counted from receipt

    pa.clock.set("2026-10-10T11:00:00")  # the make-up Saturday is a working day: still in time
    assert pa.management.run_due_timers() == 0
    complete(pa, iid, "Task_AgencyHandle", {"outcome": "resolved", "answer": "联动规划建设服务板块，已指导办理。"})
    assert [t.status for t in timers(pa, iid)] == ["cancelled"]  # one limit for the whole agency stage
    assert the_task(pa, iid, "Task_Feedback").candidate_groups == "综合受理板块"  # PA-2: unified feedback
    feedback_and_finish(pa, iid, "您的用地手续已指导办理完毕。")
    row = case_row(pa, iid)
    assert row.overdue is False and row.answered_late is False
    assert row.ledger_status == "closed" and instance_status(pa, iid) == "completed"
    assert [m.body for m in rows(pa, Outbox, iid)] == ["您的用地手续已指导办理完毕。"]
    assert rows(pa, Supervision, iid) == []
    assert not any(a == "timer_fired" for a, _, _ in history(pa, iid))


# --- 3-day deadline passes in 代办: 督办, the agency keeps the case ---------------------------------------------
@pytest.mark.req("PA-6", "PA-9", "BP-3", "WD-1")
def test_agency_deadline_passing_raises_supervision_without_taking_the_case_away(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "complex")
    complete(pa, iid, "Task_AgencyAssess", {"joint_panels": "经济发展服务板块"})

    pa.clock.set("2026-10-10T23:59:58")
    assert pa.management.run_due_timers() == 0
    pa.clock.set("2026-10-11T08:00:00")  # Sunday morning: the limit (end of the make-up Saturday) passed
    assert pa.management.run_due_timers() == 1
    fired = [t for t in timers(pa, iid) if t.status == "fired"]
    assert [(t.spec_id, t.interrupting) for t in fired] == [("Boundary_Agency3Days", False)]

    ((kind, reason),) = supervisions(pa, iid)
    assert kind == "督办" and "3个工作日" in reason
    row = case_row(pa, iid)
    assert row.overdue is True and row.ledger_status == "carried"  # 挂账: deadline passed before the answer
    office = the_task(pa, iid, "Task_OfficeSupervise")
    assert office.candidate_groups == "企业综合服务办公室"  # PA-9: the office tracks and supervises
    assert the_task(pa, iid, "Task_AgencyHandle")  # non-interrupting: the agency keeps working on it
    fired_event = [p for a, _, p in history(pa, iid) if a == "timer_fired"]
    assert len(fired_event) == 1 and fired_event[0]["details"]["interrupting"] is False
    assert any(n["topic"] == "supervise" for n in fired_event[0]["notes"])

    complete(pa, iid, "Task_OfficeSupervise", {"measures": "电话督促代办服务板块，要求10月12日前答复"}, actor="办公室")
    pa.clock.set("2026-10-12T10:00:00")
    complete(pa, iid, "Task_AgencyHandle", {"outcome": "resolved", "answer": "已解决"})
    feedback_and_finish(pa, iid)
    row = case_row(pa, iid)
    assert row.answered_late is True
    assert instance_status(pa, iid) == "completed"


# --- simple but not answered the same day: interrupting, 催办 and on to 代办 -------------------------------------
@pytest.mark.req("PA-6", "PA-9", "BP-3", "WD-1")
def test_simple_problem_not_answered_before_the_holiday_moves_to_the_agency_panel(pa: ProcessEngine) -> None:
    """Accepted on the last working day before National Day and left unanswered: 不过夜 fails at midnight."""
    iid = submit(pa)
    classify(pa, iid, "simple")
    pa.clock.set("2026-09-30T23:59:58")
    assert pa.management.run_due_timers() == 0
    pa.clock.set("2026-10-01T00:00:00")  # the holiday's first minute: 不过夜 has failed
    assert pa.management.run_due_timers() == 1
    assert [t.spec_id for t in open_tasks(pa, iid)] == ["Task_AgencyAssess"]  # interrupting: answer task gone
    ((kind, reason),) = supervisions(pa, iid)
    assert kind == "催办" and "不过夜" in reason
    row = case_row(pa, iid)
    assert row.overdue and row.ledger_status == "carried" and row.handling_unit == "PA01"
    # the agency's 3 working days still count from receipt: over the holiday to the make-up Saturday
    assert utc(the_task(pa, iid, "Task_AgencyAssess").due_at) == end_of_day("2026-10-10")
    elements = completed_elements(pa, iid)
    assert "Task_AnswerOnSpot" not in elements
    assert elements.index("Boundary_SameDay") < elements.index("Task_UrgeSameDay") < elements.index(
        "Task_TransferAgency")


@pytest.mark.req("PA-6", "WD-1")
def test_case_accepted_on_a_holiday_gets_the_next_working_day_as_its_same_day_limit(
        pa: ProcessEngine, clock: FixedClock) -> None:
    clock.set("2026-10-03T10:00:00")  # an enterprise visit during the National Day holiday
    iid = submit(pa)
    classify(pa, iid, "simple")
    assert utc(the_task(pa, iid, "Task_AnswerOnSpot").due_at) == end_of_day("2026-10-08")
    clock.set("2026-10-07T20:00:00")
    assert pa.management.run_due_timers() == 0  # still a holiday: nothing is overdue yet


@pytest.mark.req("PA-6", "WD-1")
def test_deadlines_crossing_national_day_skip_the_holiday_and_count_the_make_up_day(
        pa: ProcessEngine, clock: FixedClock) -> None:
    clock.set("2026-09-29T15:00:00")  # Tuesday: 3 working days are 09-30, 10-08, 10-09
    early = submit(pa)
    classify(pa, early, "complex")
    assert utc(the_task(pa, early, "Task_AgencyAssess").due_at) == end_of_day("2026-10-09")
    clock.set("2026-09-30T10:00:00")  # Wednesday: 10-08, 10-09 and the make-up Saturday 10-10
    late = submit(pa)
    classify(pa, late, "complex")
    assert utc(the_task(pa, late, "Task_AgencyAssess").due_at) == end_of_day("2026-10-10")


# --- 诉求服务板块: 块上 problem solved within 5 working days -----------------------------------------------------
@pytest.mark.req("PA-5", "PA-6", "WD-1")
def test_area_problem_the_agency_cannot_solve_is_resolved_by_the_appeal_panel_within_5_days(
        pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "complex", "area")
    through_agency(pa, iid, "unresolved", "涉及多个部门，代办无法解决")
    appeal = the_task(pa, iid, "Task_Appeal")
    assert appeal.candidate_groups == "诉求服务板块"
    assert utc(appeal.due_at) == end_of_day("2026-10-13")  # 5 working days from receipt
    (timer,) = [t for t in timers(pa, iid) if t.status == "waiting"]
    assert (timer.spec_id, timer.interrupting) == ("Boundary_Appeal5Days", False)

    pa.clock.set("2026-10-13T17:00:00")
    complete(pa, iid, "Task_Appeal", {"scope": "area", "outcome": "resolved", "answer": "协调园区管委会解决"})
    assert the_task(pa, iid, "Task_Feedback")
    feedback_and_finish(pa, iid)
    row = case_row(pa, iid)
    assert row.escalated_to is None and not row.overdue and row.ledger_status == "closed"
    assert "Task_Escalate" not in completed_elements(pa, iid)


@pytest.mark.req("PA-5")
def test_area_problem_cannot_be_reported_to_the_county_window(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "difficult", "area")
    through_agency(pa, iid, "unresolved")
    complete(pa, iid, "Task_Appeal", {"scope": "area", "outcome": "report", "answer": "想申报县里"})
    assert [t.spec_id for t in open_tasks(pa, iid)] == ["Task_Appeal"]  # back to the appeal panel
    assert case_row(pa, iid).escalated_to is None
    assert "Task_Escalate" not in completed_elements(pa, iid)


@pytest.mark.req("PA-6", "PA-9", "BP-3")
def test_appeal_deadline_passing_raises_supervision(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "difficult", "area")
    through_agency(pa, iid, "unresolved")
    pa.clock.set("2026-10-14T00:00:00")
    assert pa.management.run_due_timers() == 1
    ((kind, reason),) = supervisions(pa, iid)
    assert kind == "督办" and "5个工作日" in reason
    assert {t.spec_id for t in open_tasks(pa, iid)} == {"Task_Appeal", "Task_OfficeSupervise"}
    assert case_row(pa, iid).ledger_status == "carried"


# --- 诉求服务板块 gives a plan: completed within 30 working days -------------------------------------------------
@pytest.mark.req("PA-6", "PA-2", "WD-1")
def test_appeal_panel_gives_a_plan_that_is_completed_within_30_working_days(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "complex", "area")
    through_agency(pa, iid, "unresolved")
    pa.clock.set("2026-10-12T10:00:00")
    complete(pa, iid, "Task_Appeal", {"scope": "area", "outcome": "plan",
                                      "answer": "解决方案：11月中旬前完成道路改造"})
    (plan_msg,) = rows(pa, Outbox, iid)
    assert plan_msg.recipient == "enterprise" and plan_msg.template == "plan" and "道路改造" in plan_msg.body
    execute = the_task(pa, iid, "Task_PlanExecute")
    assert execute.candidate_groups == "诉求服务板块"
    assert utc(execute.due_at) == end_of_day("2026-11-17")  # 30 working days from receipt
    pa.clock.set("2026-11-16T10:00:00")
    assert pa.management.run_due_timers() == 0
    complete(pa, iid, "Task_PlanExecute", {"answer": "道路改造完成"})
    feedback_and_finish(pa, iid, "道路改造已完成。")
    assert [m.body for m in rows(pa, Outbox, iid)][-1] == "道路改造已完成。"
    assert case_row(pa, iid).ledger_status == "closed" and instance_status(pa, iid) == "completed"


@pytest.mark.req("PA-6", "PA-9", "BP-3")
def test_plan_not_completed_within_30_working_days_is_supervised(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "complex", "area")
    through_agency(pa, iid, "unresolved")
    complete(pa, iid, "Task_Appeal", {"scope": "area", "outcome": "plan", "answer": "方案"})
    pa.clock.set("2026-11-18T09:00:00")
    assert pa.management.run_due_timers() == 1
    ((kind, reason),) = supervisions(pa, iid)
    assert kind == "督办" and "30个工作日" in reason
    assert {t.spec_id for t in open_tasks(pa, iid)} == {"Task_PlanExecute", "Task_OfficeSupervise"}


# --- 点上/链上: reported to the county window --------------------------------------------------------------------
@pytest.mark.req("PA-5", "BP-2", "PA-8", "WD-1")
def test_point_problem_is_reported_to_the_county_window_which_resolves_it(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "difficult", "point")
    through_agency(pa, iid, "unresolved")
    pa.clock.set("2026-10-12T10:00:00")
    complete(pa, iid, "Task_Appeal", {"scope": "chain", "outcome": "report", "answer": "产业链上游配套问题，镇里无法处置"})
    row = case_row(pa, iid)
    assert row.escalated_to == "PA-COUNTY" and utc(row.escalated_at) == to_utc("2026-10-12T10:00:00")
    assert row.scope == "chain"  # the appeal panel's judgement replaced the intake's
    assert ("PA-COUNTY", "escalated") in [(u.unit_code, u.role) for u in rows(pa, CaseUnit, iid)]
    county = the_task(pa, iid, "Task_CountyHandle")
    assert county.candidate_groups == "兜底服务板块"
    assert utc(county.due_at) == end_of_day("2026-10-19")  # 5 working days from the report (Mon 10-12)

    complete(pa, iid, "Task_CountyHandle", {"answer": "县中心协调上游企业供货"}, actor="难事办理窗口")
    complete(pa, iid, "Task_Feedback", {"feedback": "已由县企业综合服务中心协调解决。"})
    (draw,) = rows(pa, RevisitDraw, iid)
    assert (draw.kind, draw.rate, draw.selected) == ("difficult", 1.0, True)  # 疑难: always revisited
    complete(pa, iid, "Task_Revisit", {"satisfaction": "基本满意"}, actor="办公室")
    row = case_row(pa, iid)
    assert row.ledger_status == "closed" and row.satisfaction == "基本满意"
    elements = completed_elements(pa, iid)
    assert elements.index("Task_Escalate") < elements.index("Task_CountyHandle") < elements.index("Task_Feedback")


@pytest.mark.req("PA-5", "PA-9", "BP-3")
def test_county_window_deadline_passing_raises_supervision(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "difficult", "point")
    through_agency(pa, iid, "unresolved")
    pa.clock.set("2026-10-12T10:00:00")
    complete(pa, iid, "Task_Appeal", {"scope": "point", "outcome": "report", "answer": "申报"})
    pa.clock.set("2026-10-19T23:00:00")
    assert pa.management.run_due_timers() == 0
    pa.clock.set("2026-10-20T00:00:00")
    assert pa.management.run_due_timers() == 1
    ((kind, reason),) = supervisions(pa, iid)
    assert kind == "督办" and "难事办理" in reason
    assert {t.spec_id for t in open_tasks(pa, iid)} == {"Task_CountyHandle", "Task_OfficeSupervise"}


# --- timers fire exactly once ---------------------------------------------------------------------------------
@pytest.mark.req("BP-3", "PA-9")
def test_overdue_timer_fires_exactly_once_after_downtime(pa: ProcessEngine) -> None:
    iid = submit(pa)
    classify(pa, iid, "complex")
    complete(pa, iid, "Task_AgencyAssess", {"joint_panels": "招商服务板块"})
    pa.clock.set("2026-12-31T09:00:00")  # the server was down for months
    assert pa.management.run_due_timers() == 1
    assert pa.management.run_due_timers() == 0
    pa.clock.advance(days=1)
    assert pa.management.run_due_timers() == 0
    (timer,) = [t for t in timers(pa, iid) if t.spec_id == "Boundary_Agency3Days"]
    assert timer.status == "fired" and utc(timer.fired_at) == to_utc("2026-12-31T09:00:00")
    assert utc(timer.due_at) == end_of_day("2026-10-10")
    assert len(supervisions(pa, iid)) == 1 and len({r.at for r in rows(pa, Supervision, iid)}) == 1
    assert [t.spec_id for t in open_tasks(pa, iid)].count("Task_OfficeSupervise") == 1
    assert sum(1 for a, _, _ in history(pa, iid) if a == "timer_fired") == 1


# --- revisits (PA-8) -----------------------------------------------------------------------------------------
@pytest.mark.req("PA-8", "PA-7")
def test_general_problems_are_revisited_by_a_reproducible_20_percent_draw(pa: ProcessEngine) -> None:
    seen: dict[bool, str] = {}
    for _ in range(30):
        result = submit_case(pa, PROCESS, FIELDS)
        iid = result.instance_id
        classify(pa, iid, "simple")
        complete(pa, iid, "Task_AnswerOnSpot", {"feedback": "已答复"})
        (draw,) = rows(pa, RevisitDraw, iid)
        expected_seed, expected_draw = draw_for(result.business_key, "general", keys_at())
        assert (draw.kind, draw.rate, draw.seed, draw.draw) == ("general", 0.2, expected_seed, expected_draw)
        assert draw.selected == (expected_draw < 2000)
        revisit = [t for t in open_tasks(pa, iid) if t.spec_id == "Task_Revisit"]
        if draw.selected:
            assert revisit and revisit[0].candidate_groups == "企业综合服务办公室"
            assert case_row(pa, iid).ledger_status == "answered"
            complete(pa, iid, "Task_Revisit", {"satisfaction": "满意"}, actor="办公室")
        else:
            assert not revisit
        assert case_row(pa, iid).ledger_status == "closed" and instance_status(pa, iid) == "completed"
        seen.setdefault(draw.selected, result.business_key)
        if len(seen) == 2:
            break
    assert set(seen) == {True, False}, "30 cases should include drawn and undrawn ones"


@pytest.mark.req("PA-8", "PA-7")
def test_complaint_is_always_revisited_and_a_dissatisfied_enterprise_keeps_the_case_carried(
        pa: ProcessEngine) -> None:
    iid = submit(pa, channel="walk_in")
    classify(pa, iid, "complaint")
    complete(pa, iid, "Task_Appeal", {"scope": "area", "outcome": "resolved", "answer": "投诉已核实处理"})
    complete(pa, iid, "Task_Feedback", {"feedback": "投诉已处理"})
    (draw,) = rows(pa, RevisitDraw, iid)
    assert (draw.kind, draw.selected) == ("complaint", True) and "100%" in draw.reason
    complete(pa, iid, "Task_Revisit", {"satisfaction": "不满意", "revisit_notes": "企业认为处理不彻底"}, actor="办公室")
    row = case_row(pa, iid)
    assert row.ledger_status == "carried" and row.closed_at is None and row.satisfaction == "不满意"
    assert [r.value for r in rows(pa, Rating, iid)] == ["不满意"]
    # RC-7: the 不满意 is verified (核实) before the case is closed or reworked (tests/scenarios/test_pan_an_rework.py)
    assert the_task(pa, iid, "Task_VerifyDissatisfied").candidate_groups == "企业综合服务办公室"


@pytest.mark.req("PA-2")
def test_forms_refuse_bad_input_and_change_nothing(pa: ProcessEngine) -> None:
    from engine.errors import FormValidationError

    iid = submit(pa)
    task = the_task(pa, iid, "Task_Classify")
    with pytest.raises(FormValidationError) as err:
        pa.runtime.complete_task(task.task_guid, {"classification": "urgent", "scope": "area"})
    assert "classification" in err.value.errors
    with pytest.raises(FormValidationError):
        pa.runtime.complete_task(task.task_guid, {"scope": "area"})  # classification is required
    assert the_task(pa, iid, "Task_Classify").task_guid == task.task_guid
    assert [a for a, _, _ in history(pa, iid)] == ["started"]


# --- defects seen on main (#14 item 11) -------------------------------------------------------------------------
@pytest.mark.req("PA-6", "PA-9", "BP-3")
def test_one_lapse_of_the_agency_limit_during_assessment_gives_one_supervision(pa: ProcessEngine) -> None:
    """The 3 working days cover the agency's whole handling (研判, 会商, 办理): a lapse while the panel still
    assesses is supervised once, and the handling that follows does not fire an already past-due timer again."""
    iid = submit(pa)
    classify(pa, iid, "complex")
    pa.clock.set("2026-10-11T08:00:00")  # the limit (end of the make-up Saturday 10-10) passed during 研判
    assert pa.management.run_due_timers() == 1
    assert len(supervisions(pa, iid)) == 1
    complete(pa, iid, "Task_AgencyAssess", {"joint_panels": "经济发展服务板块"}, actor="代办员")
    assert the_task(pa, iid, "Task_AgencyHandle")
    assert pa.management.run_due_timers() == 0  # nothing else is due: the same lapse is not supervised again
    assert len(rows(pa, Supervision, iid)) == 1
    assert [t.spec_id for t in open_tasks(pa, iid)].count("Task_OfficeSupervise") == 1
    assert sum(1 for a, _, _ in history(pa, iid) if a == "timer_fired") == 1
    assert [t.status for t in timers(pa, iid)] == ["fired"]
    complete(pa, iid, "Task_AgencyHandle", {"outcome": "resolved", "answer": "已解决"})
    assert len(rows(pa, Supervision, iid)) == 1


@pytest.mark.req("PA-8", "PA-5")
def test_a_case_that_ended_at_the_county_window_is_revisited_at_100_percent(pa: ProcessEngine) -> None:
    """Classified 复杂 at intake (a general problem, 20 %), it turned out a point problem that only the county's
    兜底服务板块 could solve: the kind is decided when the case closes, from how it was handled."""
    seen_general = False
    for _ in range(6):  # several cases, so that a 20 % draw would miss at least one of them
        iid = submit(pa)
        classify(pa, iid, "complex", "point")
        through_agency(pa, iid, "unresolved")
        complete(pa, iid, "Task_Appeal", {"scope": "point", "outcome": "report", "answer": "镇里无法处置"})
        complete(pa, iid, "Task_CountyHandle", {"answer": "县中心协调解决"}, actor="难事办理窗口")
        complete(pa, iid, "Task_Feedback", {"feedback": "已由县企业综合服务中心协调解决。"})
        (draw,) = rows(pa, RevisitDraw, iid)
        assert (draw.kind, draw.rate, draw.selected) == ("difficult", 1.0, True), draw.reason
        assert "难事办理窗口" in draw.reason
        assert the_task(pa, iid, "Task_Revisit")
        seen_general = seen_general or case_row(pa, iid).classification == "complex"
    assert seen_general
    # a case the agency solved keeps the general rule
    iid = submit(pa)
    classify(pa, iid, "complex")
    through_agency(pa, iid, "resolved")
    complete(pa, iid, "Task_Feedback", {"feedback": "已解决"})
    (draw,) = rows(pa, RevisitDraw, iid)
    assert (draw.kind, draw.rate) == ("general", 0.2)


@pytest.mark.req("PA-8", "AU-1")
def test_the_revisit_draw_is_keyed_by_a_secret_and_reproducible_afterwards(pa: ProcessEngine) -> None:
    """Nobody can tell at intake whether a case will be revisited (the draw is an HMAC under a key kept outside
    the database), and an auditor holding the key recomputes every recorded draw."""
    import hashlib

    from handlers import revisit

    result = submit_case(pa, PROCESS, FIELDS)
    iid = result.instance_id
    classify(pa, iid, "simple")
    complete(pa, iid, "Task_AnswerOnSpot", {"feedback": "已答复"})
    (draw,) = rows(pa, RevisitDraw, iid)
    public_seed = f"{result.business_key}|general|{revisit.POLICY_VERSION}"
    keys = revisit.RevisitKeys.load(revisit.key_file())
    assert draw.seed.startswith(public_seed) and draw.seed != public_seed  # names the key it was drawn with
    assert revisit.recompute(draw.seed, keys) == draw.draw  # reproducible afterwards, with the key
    assert draw.selected == (draw.draw < draw.threshold)
    # the same case under other keys draws differently: what is known at intake does not decide it
    others = {revisit.draw_for(result.business_key, "general", revisit.RevisitKeys.generate())[1] for _ in range(20)}
    assert len(others) > 10
    sha_only = int(hashlib.sha256(public_seed.encode()).hexdigest(), 16) % 10000
    assert others != {sha_only}
    # the draw is in the case history
    notes = [n for _, _, p in history(pa, iid) for n in p.get("notes", []) if n.get("topic") == "revisit_sample"]
    assert [(n["seed"], n["draw"], n["selected"]) for n in notes] == [(draw.seed, draw.draw, draw.selected)]


@pytest.mark.req("PA-5", "PA-3")
def test_complaints_go_straight_to_the_appeal_panel(pa: ProcessEngine) -> None:
    """Seed: the 诉求服务板块 handles "企业办件过程中引起的投诉、信访等问题"; a complaint is not the 代办's to assess."""
    iid = submit(pa, channel="walk_in")
    classify(pa, iid, "complaint")
    assert [t.spec_id for t in open_tasks(pa, iid)] == ["Task_Appeal"]
    appeal = the_task(pa, iid, "Task_Appeal")
    assert appeal.candidate_groups == "诉求服务板块"
    assert utc(appeal.due_at) == end_of_day("2026-10-13")  # the 5 working days from receipt
    elements = completed_elements(pa, iid)
    assert "Task_AgencyAssess" not in elements and "Task_TransferAgency" not in elements
    assert [(u.unit_code, u.role) for u in rows(pa, CaseUnit, iid)] == [("PA01", "handling")]
    complete(pa, iid, "Task_Appeal", {"scope": "area", "outcome": "resolved", "answer": "投诉已核实处理"})
    complete(pa, iid, "Task_Feedback", {"feedback": "投诉已处理"})
    (draw,) = rows(pa, RevisitDraw, iid)
    assert (draw.kind, draw.selected) == ("complaint", True)


# --- RC-10: office hours and the provisional calendar ------------------------------------------------------------
@pytest.mark.req("RC-10", "PA-6", "WD-1")
def test_a_case_received_after_office_hours_counts_its_same_day_limit_from_the_next_opening(
        pa: ProcessEngine, clock: FixedClock) -> None:
    """不过夜 for a visit registered at 23:30: the limit is the end of the next working day, not midnight."""
    clock.set("2026-09-29T23:30:00")  # Tuesday night, after 17:30
    iid = submit(pa)
    classify(pa, iid, "simple")
    assert utc(the_task(pa, iid, "Task_AnswerOnSpot").due_at) == end_of_day("2026-09-30")
    clock.set("2026-09-30T00:00:00")
    assert pa.management.run_due_timers() == 0  # not overdue at midnight
    # the last working day before National Day, after closing: the next opening is Thursday 10-08
    clock.set("2026-09-30T17:30:00")
    late = submit(pa)
    classify(pa, late, "simple")
    assert utc(the_task(pa, late, "Task_AnswerOnSpot").due_at) == end_of_day("2026-10-08")
    # within office hours (and before opening) it is the same day, as before
    clock.set("2026-09-30T07:45:00")
    early = submit(pa)
    classify(pa, early, "simple")
    assert utc(the_task(pa, early, "Task_AnswerOnSpot").due_at) == end_of_day("2026-09-30")


@pytest.mark.req("RC-10", "WD-1", "PA-6")
def test_a_deadline_in_a_year_without_a_schedule_skips_the_spring_festival_and_stays_provisional(
        pa: ProcessEngine, clock: FixedClock) -> None:
    """2027 has no official schedule loaded: the fallback knows 春节 (除夕 2-5 to 初三 2-8) from the lunar
    calendar, and the deadline is flagged 暂定 because the 调休 is unknown."""
    clock.set("2027-02-04T10:00:00")  # Thursday before the Spring Festival
    iid = submit(pa)
    classify(pa, iid, "complex")
    assess = the_task(pa, iid, "Task_AgencyAssess")
    assert utc(assess.due_at) == end_of_day("2027-02-11")  # 2-9, 2-10, 2-11: 2-5 and 2-8 are holidays
    assert assess.due_provisional is True
    (timer,) = [t for t in timers(pa, iid) if t.status == "waiting"]
    assert timer.provisional is True


# --- RC-8: the revisit within a limit after the reply ------------------------------------------------------------
@pytest.mark.req("RC-8", "PA-8", "PA-9", "WD-1")
def test_a_revisit_not_made_within_one_working_day_of_the_reply_is_urged(pa: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(pa, channel="walk_in")
    classify(pa, iid, "complaint")
    complete(pa, iid, "Task_Appeal", {"scope": "area", "outcome": "resolved", "answer": "投诉已核实处理"})
    clock.set("2026-09-30T16:00:00")
    complete(pa, iid, "Task_Feedback", {"feedback": "投诉已处理"})  # the reply, before National Day
    revisit = the_task(pa, iid, "Task_Revisit")
    assert utc(revisit.due_at) == end_of_day("2026-10-08")  # 1 working day after the reply, over the holiday
    (timer,) = [t for t in timers(pa, iid) if t.status == "waiting"]
    assert (timer.spec_id, timer.interrupting) == ("Boundary_Revisit1Day", False)
    clock.set("2026-10-08T23:00:00")
    assert pa.management.run_due_timers() == 0
    clock.set("2026-10-09T00:00:00")
    assert pa.management.run_due_timers() == 1
    ((kind, reason),) = supervisions(pa, iid)  # against the station that revisits
    assert kind == "催办" and "回访" in reason and "1个工作日" in reason
    row = case_row(pa, iid)
    assert row.overdue is False and row.ledger_status == "answered"  # the answer itself was on time
    assert the_task(pa, iid, "Task_Revisit")  # non-interrupting: the office still revisits
    complete(pa, iid, "Task_Revisit", {"satisfaction": "满意", "revisit_notes": "电话回访"}, actor="办公室")
    assert case_row(pa, iid).ledger_status == "closed" and instance_status(pa, iid) == "completed"
    assert pa.management.run_due_timers() == 0


@pytest.mark.req("RC-8", "PA-8")
def test_a_revisit_made_in_time_raises_nothing(pa: ProcessEngine, clock: FixedClock) -> None:
    iid = submit(pa)
    classify(pa, iid, "difficult", "point")
    through_agency(pa, iid, "unresolved")
    complete(pa, iid, "Task_Appeal", {"scope": "point", "outcome": "resolved", "answer": "已解决"})
    complete(pa, iid, "Task_Feedback", {"feedback": "已解决"})
    clock.set("2026-10-08T17:00:00")
    complete(pa, iid, "Task_Revisit", {"satisfaction": "满意"}, actor="办公室")
    assert [t.status for t in timers(pa, iid) if t.spec_id == "Boundary_Revisit1Day"] == ["cancelled"]
    assert rows(pa, Supervision, iid) == []
