"""Call activities: the called process of the same file or of another file deployed with the caller runs as a
SpiffWorkflow subprocess inside the one case; a new version of the called file is a new version of the caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine.errors import DeploymentError
from engine.models import HumanTask
from engine.process_engine import ProcessEngine

DIAGRAMS = Path(__file__).parent / "conformance" / "diagrams"
MAIN, SUB = (DIAGRAMS / "call_main.bpmn").read_bytes(), (DIAGRAMS / "call_sub.bpmn").read_bytes()


def _complete(engine: ProcessEngine, instance_id: int, element: str, data: dict) -> str:
    with engine.read() as session:
        guid = session.scalar(select(HumanTask.task_guid).where(HumanTask.instance_id == instance_id,
                                                                HumanTask.spec_id == element))
    return engine.runtime.complete_task(guid, data).status


def test_a_process_of_another_file_deployed_with_it_runs_inside_the_case(engine: ProcessEngine) -> None:
    results = engine.repository.deploy_many([("call_main.bpmn", MAIN), ("call_sub.bpmn", SUB)], actor="designer")
    assert [r.deployment.process_key for r in results] == ["call_main", "call_sub"]
    iid = engine.runtime.start("call_main", "CALL-1", {}).instance_id
    assert _complete(engine, iid, "Review", {"bonus": 3}) == "completed"
    assert engine.runtime.instance("CALL-1").data["total"] == 8
    events = engine.history.events(iid)
    assert [c.element for c in events[-1].completed][:2] == ["Review", "RE"]


def test_the_caller_alone_is_refused_naming_the_missing_process(engine: ProcessEngine) -> None:
    with pytest.raises(DeploymentError) as refused:
        engine.deploy(MAIN, filename="call_main.bpmn")
    assert "call_sub" in refused.value.message


def test_a_new_version_of_the_called_file_is_a_new_version_of_the_caller(engine: ProcessEngine) -> None:
    first = engine.repository.deploy_many([("call_main.bpmn", MAIN), ("call_sub.bpmn", SUB)])
    again = engine.repository.deploy_many([("call_main.bpmn", MAIN), ("call_sub.bpmn", SUB)])
    assert [r.created for r in again] == [False, False]
    changed = SUB.replace(b'label="bonus"', 'label="奖励"'.encode())
    third = engine.repository.deploy_many([("call_main.bpmn", MAIN), ("call_sub.bpmn", changed)])
    assert [r.created for r in third] == [True, True]
    assert third[0].deployment.version == first[0].deployment.version + 1
    previews = engine.repository.preview([("call_main.bpmn", MAIN), ("call_sub.bpmn", changed)])
    assert [p.same_as_version for p in previews] == [third[0].deployment.version, third[1].deployment.version]


def test_two_processes_nothing_calls_in_one_file_are_still_refused(engine: ProcessEngine) -> None:
    text = (DIAGRAMS / "c_call_activity.bpmn").read_text(encoding="utf-8").replace(
        'calledElement="c_call_review"', 'calledElement="elsewhere"')
    with pytest.raises(DeploymentError, match="恰好包含一个可执行的主流程"):
        engine.deploy(text.encode(), filename="two.bpmn")
