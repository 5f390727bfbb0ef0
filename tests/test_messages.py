"""Messages and signals from outside: runtime.correlate_message delivers a message to the case waiting for it (and
runtime.broadcast_signal a signal to every case waiting for it), one step per case,
and refuses — with a structured error and no change — when no case waits for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine.errors import NotCorrelatedError
from engine.models import HumanTask, Instance, SignalWait, Timer
from engine.process_engine import ProcessEngine

DIAGRAMS = Path(__file__).parent / "conformance" / "diagrams"


def _deploy(engine: ProcessEngine, name: str) -> None:
    engine.deploy((DIAGRAMS / f"{name}.bpmn").read_bytes(), filename=f"{name}.bpmn")


def _version(engine: ProcessEngine, business_key: str) -> tuple[int, int]:
    with engine.read() as session:
        row = session.execute(select(Instance.version, Instance.history_seq)
                              .where(Instance.business_key == business_key)).one()
        return row.version, row.history_seq


def test_a_message_sets_its_variables_and_is_one_step(engine: ProcessEngine) -> None:
    _deploy(engine, "c_message_from_outside")
    iid = engine.runtime.start("c_message_from_outside", "MSG-1", {}).instance_id
    result = engine.runtime.correlate_message("materials", "MSG-1", {"pages": 12}, actor="gateway")
    assert result.status == "running" and len(result.opened) == 1
    with engine.read() as session:
        assert session.scalar(select(HumanTask.spec_id).where(HumanTask.instance_id == iid)) == "Review"
    event = engine.history.events(iid)[-1]
    assert (event.action, event.actor, event.details["message"]) == ("message_received", "gateway", "materials")
    assert [c.element for c in event.completed] == ["Materials"]
    assert engine.runtime.instance("MSG-1").data["pages"] == 12


def test_an_interrupting_message_boundary_event_cancels_the_task(engine: ProcessEngine) -> None:
    _deploy(engine, "c_message_from_outside")
    engine.runtime.start("c_message_from_outside", "MSG-2", {})
    engine.runtime.correlate_message("materials", "MSG-2")
    result = engine.runtime.correlate_message("withdraw", "MSG-2", {"reason": "企业撤回"})
    assert result.status == "completed"
    view = engine.runtime.instance("MSG-2")
    assert view.data["closed"] is True and view.data["reason"] == "企业撤回"
    with engine.read() as session:
        assert session.scalar(select(HumanTask.id).where(HumanTask.instance_id == view.id)) is None


def test_a_message_behind_an_event_gateway_cancels_the_timer_row(engine: ProcessEngine) -> None:
    _deploy(engine, "c_event_gateway")
    iid = engine.runtime.start("c_event_gateway", "MSG-3", {}).instance_id
    engine.runtime.correlate_message("reply", "MSG-3", {"answer": "已补正"})
    with engine.read() as session:
        assert session.scalar(select(Timer.status).where(Timer.instance_id == iid)) == "cancelled"
    engine.clock.advance(hours=3)
    assert engine.management.run_due_timers() == 0
    assert engine.runtime.instance("MSG-3").data["reply"] == {"answer": "已补正"}


@pytest.mark.parametrize(("business_key", "name", "words", "waiting"), [
    ("MSG-4", "withdraw", ["没有在等待该消息", "materials"], ["materials"]),  # not waiting for this one (yet)
    ("NO-SUCH-CASE", "materials", ["不存在"], []),
])
def test_a_message_no_case_waits_for_is_refused_and_changes_nothing(engine: ProcessEngine, business_key: str,
                                                                    name: str, words: list[str],
                                                                    waiting: list[str]) -> None:
    _deploy(engine, "c_message_from_outside")
    engine.runtime.start("c_message_from_outside", "MSG-4", {})
    before = _version(engine, "MSG-4")
    with pytest.raises(NotCorrelatedError) as refused:
        engine.runtime.correlate_message(name, business_key, {"x": 1})
    error = refused.value.to_dict()
    assert error["error"] == "not_correlated"
    assert error["details"] == {"message_name": name, "business_key": business_key, "waiting": waiting}
    for word in words:
        assert word in error["message"], error
    assert _version(engine, "MSG-4") == before


def test_a_message_to_an_ended_case_is_refused(engine: ProcessEngine) -> None:
    _deploy(engine, "c_message_from_outside")
    engine.runtime.start("c_message_from_outside", "MSG-5", {})
    engine.runtime.correlate_message("materials", "MSG-5")
    engine.runtime.correlate_message("withdraw", "MSG-5")
    with pytest.raises(NotCorrelatedError, match="已结束"):
        engine.runtime.correlate_message("materials", "MSG-5")


# --- signals from outside --------------------------------------------------------------------------------
def _signal_rows(engine: ProcessEngine) -> list[tuple[int, str]]:
    with engine.read() as session:
        return sorted((r.instance_id, r.name) for r in session.execute(select(SignalWait.instance_id, SignalWait.name)))


def test_a_broadcast_reaches_every_case_waiting_for_the_signal_one_step_each(engine: ProcessEngine) -> None:
    _deploy(engine, "c_signal_from_outside")
    ids = [engine.runtime.start("c_signal_from_outside", f"SIG-{n}", {}).instance_id for n in range(3)]
    assert _signal_rows(engine) == [(i, "go") for i in ids]
    outcome = engine.runtime.broadcast_signal("go", {"batch": "2026-10"}, actor="operator")
    assert sorted(r.instance_id for r in outcome.delivered) == ids and outcome.failed == []
    assert _signal_rows(engine) == [(i, "notice") for i in ids]  # each now waits at the task's boundary event
    for iid in ids:
        event = engine.history.events(iid)[-1]
        assert (event.action, event.actor, event.details["signal"]) == ("signal_received", "operator", "go")
    assert engine.runtime.instance("SIG-0").data["batch"] == "2026-10"


def test_a_broadcast_nobody_waits_for_is_refused(engine: ProcessEngine) -> None:
    _deploy(engine, "c_signal_from_outside")
    engine.runtime.start("c_signal_from_outside", "SIG-9", {})
    before = _version(engine, "SIG-9")
    with pytest.raises(NotCorrelatedError) as refused:
        engine.runtime.broadcast_signal("notice")
    assert refused.value.to_dict()["details"] == {"signal_name": "notice"}
    assert _version(engine, "SIG-9") == before


def test_a_finished_wait_leaves_no_row(engine: ProcessEngine) -> None:
    _deploy(engine, "c_signal_from_outside")
    engine.runtime.start("c_signal_from_outside", "SIG-10", {})
    engine.runtime.broadcast_signal("go")
    with engine.read() as session:
        guid = session.scalar(select(HumanTask.task_guid).where(HumanTask.spec_id == "Work"))
    engine.runtime.complete_task(guid, {"done": True})  # the boundary event stops waiting with its task
    assert _signal_rows(engine) == []


def test_verify_mode_notices_signal_rows_that_do_not_mirror_the_case(engine: ProcessEngine) -> None:
    from sqlalchemy import delete

    _deploy(engine, "c_signal_from_outside")
    engine.runtime.start("c_signal_from_outside", "SIG-11", {})
    engine.runtime.broadcast_signal("go")
    with engine.session() as session:
        session.execute(delete(SignalWait))
        guid = session.scalar(select(HumanTask.task_guid).where(HumanTask.spec_id == "Work"))
    with pytest.raises(AssertionError, match="signal_wait rows"):
        engine.runtime.complete_task(guid, {"done": True})


def test_a_message_to_a_new_business_key_starts_the_process_with_that_message_start_event(
        engine: ProcessEngine) -> None:
    _deploy(engine, "c_message_start")
    _deploy(engine, "c_message_from_outside")  # its start is not a message start: never chosen
    result = engine.runtime.correlate_message("apply", "APPLY-1", {"applicant": "某企业"}, actor="gateway")
    assert result.status == "running" and len(result.opened) == 1
    view = engine.runtime.instance("APPLY-1")
    assert view.process_key == "c_message_start" and view.data["applicant"] == "某企业"
    [event] = engine.history.events(result.instance_id)
    assert (event.action, event.details["message"], [c.element for c in event.completed]) == ("started", "apply", ["S"])
    with pytest.raises(NotCorrelatedError, match="没有在等待该消息"):  # the case exists now: no second start
        engine.runtime.correlate_message("apply", "APPLY-1")
