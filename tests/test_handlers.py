"""Domain handlers driven through the engine with a diagram of our own (tests/diagrams/domain_handlers.bpmn):
ledger, transfer, joint review, escalation, revisit sampling, notification (outbox), supervision."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from sqlalchemy import func, select

import handlers
from engine.errors import DeploymentError, ServiceTaskError
from engine.models import Event, HumanTask, Instance
from engine.services import ServiceRegistry
from handlers import intake, notify, revisit
from handlers.models import (
    CaseUnit,
    EnterpriseCase,
    JointReview,
    Outbox,
    Rating,
    RevisitDraw,
    Supervision,
)
from tests.conftest import diagram

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
FIELDS = {"unit": "FH-CENTRE", "channel": "hotline", "category": "factor_power",
          "enterprise_name": "宁波某机械有限公司", "contact_name": "王经理", "contact_phone": "13800138000",
          "title": "厂房用电增容", "description": "新厂房需要增容到 2000 千伏安，供电所答复需排队。"}


@pytest.fixture
def flow(case_engine):
    case_engine.deploy(diagram("domain_handlers.bpmn"), filename="domain_handlers.bpmn")
    return case_engine


def submit(engine, **over) -> intake.SubmittedCase:
    return intake.submit_case(engine, "domain_handlers", {**FIELDS, **over}, actor="clerk", region="fenghua")


def task(engine, instance_id: int, spec_id: str) -> HumanTask | None:
    with engine.session() as s:
        return s.scalar(select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.spec_id == spec_id))


def complete(engine, instance_id: int, spec_id: str, **data):
    row = task(engine, instance_id, spec_id)
    assert row is not None, f"no open task {spec_id}"
    return engine.runtime.complete_task(row.task_guid, data, actor="clerk")


def case_row(engine, instance_id: int) -> EnterpriseCase:
    with engine.session() as s:
        case = s.scalar(select(EnterpriseCase).where(EnterpriseCase.instance_id == instance_id))
        s.expunge(case)
        return case


def notes(engine, instance_id: int) -> list[dict]:
    with engine.session() as s:
        out = []
        for ev in s.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.seq)):
            out += json.loads(ev.payload).get("notes", [])
        return out


def data(engine, instance_id: int) -> dict:
    with engine.session() as s:
        return json.loads(s.get(Instance, instance_id).data_json)


def dispatch(engine, iid: int, route: str = "transfer", **over):
    form = {"route": route, "target_unit": "FH-JXJ", "joint_list": "", "escalate_to": "", "opinion": "请经信局协调供电",
            "revisit_kind": "complaint", **over}
    return complete(engine, iid, "dispatch", **form)


# --- registration (BP-2) -------------------------------------------------------------------------------
@pytest.mark.req("BP-2")
def test_every_topic_of_the_contract_is_registered_by_name(db_url, clock) -> None:
    registry = ServiceRegistry()
    handlers.register(registry)
    assert registry.topics() == sorted(["ledger", "transfer", "joint_review", "escalate", "revisit_sample",
                                        "notify", "supervise", "deadline", "signoff", "rework"])
    assert registry.get("transfer").description.startswith("流转交办")
    # the application's engine has them, registered by an explicit call (not as an import side effect)
    from web.engine import build_engine

    assert set(registry.topics()) <= set(build_engine().services.topics())
    assert ServiceRegistry().topics() == []
    # a registry without them refuses the diagram that references the topics by name
    from engine.process_engine import ProcessEngine

    bare = ProcessEngine(db_url, clock, ServiceRegistry())
    with pytest.raises(DeploymentError, match="unknown service-task topic"):
        bare.deploy(diagram("domain_handlers.bpmn"), filename="domain_handlers.bpmn")


# --- ledger register + notify at start -----------------------------------------------------------------
@pytest.mark.req("FH-8", "PA-7")
def test_intake_registers_the_ledger_row_and_queues_a_receipt(flow) -> None:
    sub = submit(flow)
    case = case_row(flow, sub.instance_id)
    assert case.business_key == sub.business_key and case.process_key == "domain_handlers"
    assert (case.region, case.unit, case.channel, case.category) == ("fenghua", "FH-CENTRE", "hotline", "factor_power")
    assert case.ledger_status == "handling" and not case.overdue
    assert case.tracking_hash == hashlib.sha256(sub.tracking_token.encode()).hexdigest()
    assert case.received_at == flow.clock.now()
    with flow.session() as s:
        [msg] = s.scalars(select(Outbox).where(Outbox.instance_id == sub.instance_id)).all()
        assert (msg.recipient, msg.address, msg.template, msg.sent_at) == ("enterprise", "13800138000", "received", None)
        assert sub.business_key in msg.body and "宁波某机械有限公司" in msg.body
    assert any("登记台账" in n["note"] for n in notes(flow, sub.instance_id))
    assert data(flow, sub.instance_id)["ledger_status"] == "handling"


# --- transfer ------------------------------------------------------------------------------------------
@pytest.mark.req("BP-2", "FH-4")
def test_transfer_sets_the_handling_unit_and_records_it(flow) -> None:
    sub = submit(flow)
    dispatch(flow, sub.instance_id)
    case = case_row(flow, sub.instance_id)
    assert case.handling_unit == "FH-JXJ" and case.transferred_at == flow.clock.now()
    with flow.session() as s:
        rows = s.execute(select(CaseUnit.unit_code, CaseUnit.role, CaseUnit.opinion)
                         .where(CaseUnit.case_id == case.id)).all()
    assert rows == [("FH-JXJ", "handling", "请经信局协调供电")]
    d = data(flow, sub.instance_id)
    assert d["handling_unit"] == "FH-JXJ" and d["transferred_at"] == flow.clock.now().isoformat()
    assert any(n["topic"] == "transfer" and "区经信局" in n["note"] for n in notes(flow, sub.instance_id))
    assert task(flow, sub.instance_id, "answer") is not None


@pytest.mark.req("BP-2")
def test_transfer_to_an_unknown_unit_is_refused_and_changes_nothing(flow) -> None:
    sub = submit(flow)
    before = data(flow, sub.instance_id)
    with pytest.raises(ServiceTaskError, match="未知的承办单位编码“FH-NOPE”") as err:
        dispatch(flow, sub.instance_id, target_unit="FH-NOPE")
    assert err.value.element == "do_transfer"
    assert data(flow, sub.instance_id) == before
    assert task(flow, sub.instance_id, "dispatch") is not None and task(flow, sub.instance_id, "answer") is None
    with flow.session() as s:
        assert s.scalar(select(func.count(CaseUnit.id))) == 0
    assert case_row(flow, sub.instance_id).handling_unit is None


# --- joint review --------------------------------------------------------------------------------------
@pytest.mark.req("BP-2", "FH-5")
def test_joint_review_records_co_handling_units_invitees_and_meeting(flow) -> None:
    sub = submit(flow)
    dispatch(flow, sub.instance_id, route="joint", joint_list="FH-KJJ、FH-SWJ, FH-KJJ")
    case = case_row(flow, sub.instance_id)
    with flow.session() as s:
        roles = s.execute(select(CaseUnit.unit_code, CaseUnit.role).where(CaseUnit.case_id == case.id)
                          .order_by(CaseUnit.id)).all()
        review = s.scalar(select(JointReview).where(JointReview.case_id == case.id))
    assert roles == [("FH-KJJ", "co_handling"), ("FH-SWJ", "co_handling")]
    assert review.units == "FH-KJJ,FH-SWJ" and review.invitees == "区纪委区监委，区委作风办"
    d = data(flow, sub.instance_id)
    assert d["joint_units"] == ["FH-KJJ", "FH-SWJ"]
    assert d["meeting_at"] == "2026-10-09T01:00:00+00:00"


@pytest.mark.req("BP-2")
def test_joint_review_with_an_unknown_unit_is_refused(flow) -> None:
    sub = submit(flow)
    with pytest.raises(ServiceTaskError, match="未知的共同承办单位编码“XX”"):
        dispatch(flow, sub.instance_id, route="joint", joint_list="FH-KJJ,XX")
    with flow.session() as s:
        assert s.scalar(select(func.count(JointReview.id))) == 0


# --- escalation ----------------------------------------------------------------------------------------
@pytest.mark.req("BP-2", "FH-6")
def test_escalate_to_the_leading_group_of_the_region(flow) -> None:
    sub = submit(flow)
    dispatch(flow, sub.instance_id, route="escalate", escalate_to="leading_group", opinion="涉及多个部门，需专题研究")
    case = case_row(flow, sub.instance_id)
    assert case.escalated_to == "FH-LG" and case.escalated_at == flow.clock.now()
    d = data(flow, sub.instance_id)
    assert (d["escalated_to"], d["escalated_unit"]) == ("leading_group", "FH-LG")
    with flow.session() as s:
        assert s.execute(select(CaseUnit.unit_code, CaseUnit.role)).all() == [("FH-LG", "escalated")]


@pytest.mark.req("BP-2", "PA-5")
def test_escalate_to_a_body_the_region_lacks_is_refused(flow) -> None:
    sub = submit(flow)  # a Fenghua case: there is no county 难事办理窗口 in Fenghua
    with pytest.raises(ServiceTaskError, match="没有县企业综合服务中心兜底服务板块"):
        dispatch(flow, sub.instance_id, route="escalate", escalate_to="county_window")
    with pytest.raises(ServiceTaskError, match="上报对象“mayor”无效"):
        dispatch(flow, sub.instance_id, route="escalate", escalate_to="mayor")
    assert case_row(flow, sub.instance_id).escalated_to is None


@pytest.mark.req("PA-5")
def test_pan_an_case_escalates_to_the_county_window(flow) -> None:
    sub = intake.submit_case(flow, "domain_handlers", {**FIELDS, "unit": "PA03", "channel": "visit"},
                             region="pan_an")
    assert sub.business_key.startswith("PA-20260930-")
    dispatch(flow, sub.instance_id, route="escalate", escalate_to="county_window")
    assert case_row(flow, sub.instance_id).escalated_to == "PA-COUNTY"


# --- revisit sampling (PA-8) ---------------------------------------------------------------------------
@pytest.mark.req("PA-8")
def test_the_draw_is_an_hmac_under_a_key_kept_outside_the_database(tmp_path) -> None:
    path = tmp_path / "keys" / "revisit_key"
    keys = revisit.RevisitKeys.load(path)  # created on first use, readable by the owner only
    assert path.stat().st_mode & 0o777 == 0o600
    assert revisit.RevisitKeys.load(path) == keys  # the same key the next time
    seed, draw = revisit.draw_for("PA-20260930-0001", "general", keys)
    assert seed == f"PA-20260930-0001|general|{revisit.POLICY_VERSION}|{keys.current}"
    assert draw == int(hmac.new(keys.keys[keys.current], seed.encode(), hashlib.sha256).hexdigest(), 16) % 10000
    assert revisit.recompute(seed, keys) == draw  # an auditor with the key recomputes it
    assert revisit.draw_for("PA-20260930-0001", "complaint", keys)[1] != draw  # the kind is part of the seed
    # a draw recorded before the key (plain SHA-256 of business_key|kind|policy) still recomputes
    old = "PA-20260930-0001|general|" + revisit.POLICY_VERSION
    assert revisit.recompute(old, keys) == int(hashlib.sha256(old.encode()).hexdigest(), 16) % 10000
    with pytest.raises(KeyError, match="不在密钥文件中"):
        revisit.recompute(seed, revisit.RevisitKeys.generate())
    # about 20 % of general cases are drawn; over 5000 keys the share is within 2 points
    picked = sum(revisit.draw_for(f"PA-20260930-{n:04d}", "general", keys)[1] < 2000 for n in range(5000))
    assert 0.18 < picked / 5000 < 0.22
    bad = tmp_path / "bad_key"
    bad.write_text("not a key line\n", encoding="ascii")
    with pytest.raises(ValueError, match="格式不正确"):
        revisit.RevisitKeys.load(bad)


def _key_with_draw(selected: bool) -> str:
    """A business key of 2026-09-30 whose general draw is (not) selected, found by recomputing the draw."""
    for n in range(1, 100):
        key = f"FH-20260930-{n:04d}"
        if (revisit.draw_for(key, "general", revisit.keys_at())[1] < 2000) == selected:
            return key
    raise AssertionError("no key found")


@pytest.mark.req("PA-8")
@pytest.mark.parametrize("kind", ["difficult", "complaint"])
def test_difficult_and_complaint_cases_are_always_revisited(flow, kind) -> None:
    sub = submit(flow)
    dispatch(flow, sub.instance_id, revisit_kind=kind)
    complete(flow, sub.instance_id, "answer", reply="已协调供电所")
    assert task(flow, sub.instance_id, "revisit") is not None
    with flow.session() as s:
        draw = s.scalar(select(RevisitDraw))
    assert (draw.kind, draw.rate, draw.threshold, draw.selected) == (kind, 1.0, 10000, True)
    assert "100%" in draw.reason and "必回访" in draw.reason


@pytest.mark.req("PA-8")
def test_general_cases_are_sampled_reproducibly_and_the_draw_is_recorded(flow) -> None:
    outcomes: dict[str, bool] = {}
    for _ in range(40):  # until both a drawn and an undrawn case (the key is random: P(40 alike) < 0.02 %)
        if len(set(outcomes.values())) == 2 and len(outcomes) >= 8:
            break
        sub = submit(flow)
        dispatch(flow, sub.instance_id, revisit_kind="general")
        complete(flow, sub.instance_id, "answer", reply="已答复")
        selected = task(flow, sub.instance_id, "revisit") is not None
        outcomes[sub.business_key] = selected
        with flow.session() as s:
            row = s.scalar(select(RevisitDraw).join(EnterpriseCase, EnterpriseCase.id == RevisitDraw.case_id)
                           .where(EnterpriseCase.instance_id == sub.instance_id))
        # an auditor recomputes the decision from what was recorded
        seed, draw = revisit.draw_for(sub.business_key, "general", revisit.keys_at())
        assert (row.seed, row.draw, row.threshold, row.rate) == (seed, draw, 2000, 0.2)
        assert revisit.recompute(row.seed, revisit.keys_at()) == row.draw
        assert row.selected == (draw < 2000) == selected
        assert str(draw) in row.reason and row.actor == "clerk"
        assert data(flow, sub.instance_id)["revisit_reason"] == row.reason
        if not selected:
            assert case_row(flow, sub.instance_id).ledger_status == "closed"
    # keys FH-20260930-0001… are allocated in order; their draws under the key decide, nothing else
    assert outcomes == {key: revisit.draw_for(key, "general", revisit.keys_at())[1] < 2000 for key in outcomes}
    assert outcomes[_key_with_draw(True)] is True and outcomes[_key_with_draw(False)] is False


# --- answer, revisit, rating, close / reopen (FH-7, FH-8) ----------------------------------------------
@pytest.mark.req("FH-7", "FH-8")
def test_answered_on_time_and_satisfied_is_closed_off(flow) -> None:
    sub = submit(flow)
    dispatch(flow, sub.instance_id)
    complete(flow, sub.instance_id, "answer", reply="已协调")
    case = case_row(flow, sub.instance_id)
    assert case.ledger_status == "answered" and case.answered_late is False
    complete(flow, sub.instance_id, "revisit", satisfaction="满意")
    case = case_row(flow, sub.instance_id)
    assert (case.ledger_status, case.satisfaction, case.closed_at) == ("closed", "满意", flow.clock.now())
    with flow.session() as s:
        assert s.execute(select(Rating.value, Rating.source)).all() == [("满意", "revisit")]
        assert s.get(Instance, sub.instance_id).status == "completed"


@pytest.mark.req("FH-8")
def test_dissatisfied_goes_back_and_stays_on_the_books_until_satisfied(flow) -> None:
    sub = submit(flow)
    dispatch(flow, sub.instance_id)
    complete(flow, sub.instance_id, "answer", reply="已答复")
    complete(flow, sub.instance_id, "revisit", satisfaction="不满意")
    case = case_row(flow, sub.instance_id)
    assert case.ledger_status == "carried" and case.closed_at is None
    assert task(flow, sub.instance_id, "answer") is not None  # back to the handling unit
    complete(flow, sub.instance_id, "answer", reply="再次协调，已解决")
    assert case_row(flow, sub.instance_id).ledger_status == "carried"  # answered again, still carried
    complete(flow, sub.instance_id, "revisit", satisfaction="基本满意")
    assert case_row(flow, sub.instance_id).ledger_status == "closed"
    with flow.session() as s:
        assert [r for (r,) in s.execute(select(Rating.value).order_by(Rating.id))] == ["不满意", "基本满意"]


# --- supervise (deadline passed) -----------------------------------------------------------------------
@pytest.mark.req("FH-8", "PA-9")
def test_deadline_passed_supervises_carries_and_notifies(flow) -> None:
    sub = submit(flow)  # received 2026-09-30: 2 working days end 2026-10-09
    dispatch(flow, sub.instance_id)
    flow.clock.set("2026-10-10T00:00:01")
    assert flow.management.run_due_timers() == 1
    case = case_row(flow, sub.instance_id)
    assert case.overdue and case.ledger_status == "carried"
    with flow.session() as s:
        sup = s.scalar(select(Supervision))
        assert (sup.kind, sup.unit_code, sup.reason) == ("督办", "FH-JXJ", "超过 2 个工作日未答复")
        late = s.scalar(select(Outbox).where(Outbox.template == "overdue"))
        assert late.recipient == "督办" and late.address is None and sub.business_key in late.body
    assert data(flow, sub.instance_id)["overdue"] is True
    complete(flow, sub.instance_id, "answer", reply="迟复")
    case = case_row(flow, sub.instance_id)
    assert case.answered_late is True and case.ledger_status == "carried"
    complete(flow, sub.instance_id, "revisit", satisfaction="满意")
    assert case_row(flow, sub.instance_id).ledger_status == "closed"  # solved and satisfied: off the books


# --- outbox delivery -----------------------------------------------------------------------------------
def test_outbox_delivery_marks_sent_and_records_failures(flow) -> None:
    first, second = submit(flow), submit(flow, contact_phone="0574-88888718")

    class Flaky:
        def __init__(self) -> None:
            self.sent = []

        def send(self, message: notify.Message) -> None:
            if message.address == "0574-88888718":
                raise RuntimeError("网关超时")
            self.sent.append(message)

    sender = Flaky()
    with flow.session() as s:
        report = notify.deliver_pending(s, sender, flow.clock.now())
    assert (report.sent, report.failed) == (1, 1)
    assert [m.business_key for m in sender.sent] == [first.business_key]
    with flow.session() as s:
        rows = {r.business_key: r for r in s.scalars(select(Outbox))}
    assert rows[first.business_key].sent_at == flow.clock.now() and rows[first.business_key].attempts == 1
    failed = rows[second.business_key]
    assert failed.sent_at is None and failed.attempts == 1 and "网关超时" in failed.last_error
    logging_sender = notify.LoggingSender()
    with flow.session() as s:
        again = notify.deliver_pending(s, logging_sender, flow.clock.now())
    assert (again.sent, again.failed) == (1, 0) and logging_sender.sent[0].business_key == second.business_key
    with flow.session() as s:
        assert s.scalar(select(func.count(Outbox.id)).where(Outbox.sent_at.is_(None))) == 0


def test_cli_outbox_send_delivers_pending_messages(flow, monkeypatch) -> None:
    from click.testing import CliRunner

    from web.cli import main

    sub = submit(flow)
    monkeypatch.setenv("QIFU_DATABASE_URL", flow.url)
    runner = CliRunner()
    listed = runner.invoke(main, ["--json", "outbox", "list"])
    assert [r["business_key"] for r in json.loads(listed.output)] == [sub.business_key]
    result = runner.invoke(main, ["--json", "outbox", "send"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"sent": 1, "failed": 0}
    assert json.loads(runner.invoke(main, ["--json", "outbox", "list"]).output) == []
    monkeypatch.setenv("QIFU_SENDER", "no.such.module:Sender")
    bad = runner.invoke(main, ["outbox", "send"])
    assert bad.exit_code == 2 and "QIFU_SENDER" in bad.output
