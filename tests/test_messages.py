"""Messages from outside: runtime.correlate_message delivers a message to the case waiting for it, in one step,
and refuses — with a structured error and no change — when no case waits for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine.errors import NotCorrelatedError
from engine.models import HumanTask, Instance, Timer
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
