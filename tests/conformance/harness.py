"""Run one diagram on Qifu (persisted, one step per action) and on raw SpiffWorkflow in memory, the same way.

The reference is SpiffWorkflow's own Camunda parser (``CamundaParser``) and ``BpmnWorkflow`` in memory, with
only what Qifu's diagrams need and the stock parser lacks: Camunda *External* service tasks (the same
handler is called), and the same reading of Camunda values (``${…}`` conditions and ISO timer literals, as
the deploy normalises them). Its expressions run in the restricted script engine. Stock SpiffWorkflow
timers read ``datetime.now()``; here they read the test's clock, which the script moves for both runs.

A script is a list of actions, played the same on both sides:

- ``("complete", element_id, data)`` — complete the one ready user task of that element with ``data``;
- ``("complete_all", element_id, data)`` — complete every ready user task of that element, one by one;
- ``("message", name, result_variable)`` — deliver the message ``name`` from outside without variables (Qifu:
  ``runtime.correlate_message``; the reference: ``workflow.catch`` of a Camunda message event whose result
  variable is the catching event's ``camunda:resultVariable``, as a thrown message's would be);
- ``("signal", name)`` — broadcast the signal ``name`` from outside without data (Qifu:
  ``runtime.broadcast_signal``; the reference: ``workflow.catch`` of a signal event);
- ``("wait", {"hours": 2})`` — move the clock; Qifu's timer executor fires what is due, the reference
  refreshes its timers.

Both give an :class:`Outcome`: the completed elements in order, the final workflow data, and the end state
(finished or not, and the elements still ready or waiting).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from lxml import etree
from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.specs.event_definitions import (
    MessageEventDefinition as CamundaMessageEventDefinition,
)
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import repository
from engine.bpmn import ExternalServiceTask, ExternalServiceTaskParser, camunda_expression
from engine.clock import FixedClock
from engine.models import HumanTask
from engine.process_engine import ProcessEngine
from engine.scripting import RestrictedScriptEngine
from engine.services import ServiceCall, ServiceRegistry
from engine.settings import EngineSettings, read

DIAGRAMS = Path(__file__).parent / "diagrams"
START = "2026-09-30T10:00:00"

Action = tuple[Any, ...]


@dataclass(frozen=True)
class Outcome:
    completed: list[str]
    data: dict[str, Any]
    finished: bool
    open: list[tuple[str, str]]  # (element, READY | WAITING | STARTED), sorted


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def _open(workflow: BpmnWorkflow) -> list[tuple[str, str]]:
    live = TaskState.READY | TaskState.WAITING | TaskState.STARTED
    tasks = list(workflow.get_tasks(state=live))
    for sub in workflow.subprocesses.values():
        tasks.extend(t for t in sub.get_tasks(state=live) if t not in tasks)
    return sorted({(t.task_spec.bpmn_id, TaskState.get_name(t.state)) for t in tasks if t.task_spec.bpmn_id})


# --- the reference: raw SpiffWorkflow in memory ------------------------------------------------------------
class ReferenceParser(CamundaParser):
    OVERRIDE_PARSER_CLASSES = dict(CamundaParser.OVERRIDE_PARSER_CLASSES)
    OVERRIDE_PARSER_CLASSES[full_tag("serviceTask")] = (ExternalServiceTaskParser, ExternalServiceTask)


class ReferenceScriptEngine(RestrictedScriptEngine):
    """The restricted engine with the one hook an external service task calls, without a database."""

    def __init__(self, services: ServiceRegistry, clock: FixedClock) -> None:
        super().__init__({"now": lambda: clock.now().isoformat()})
        self.services, self.clock = services, clock

    def run_service(self, my_task: Any, spec: ExternalServiceTask) -> None:
        params = {name: self.evaluate(my_task, expr) for name, expr in spec.input_parameters}
        call = ServiceCall(topic=spec.topic, params=params, data=dict(my_task.data), session=None,
                           instance_id=0, business_key="", task_id=str(my_task.id), element_id=spec.bpmn_id,
                           actor=None, now=self.clock.now(), calendar=None, process_key="")
        result = self.services.get(spec.topic).handler(call) or {}
        if spec.output_parameters:
            scope = {**my_task.data, **result}
            for name, expr in spec.output_parameters:
                my_task.data[name] = self.environment.evaluate(expr, scope)
        else:
            my_task.data.update(result)


def _reference_xml(content: bytes) -> etree._Element:
    root = etree.fromstring(content)
    repository._normalise_conditions(root)
    for tag in ("timeDate", "timeDuration", "timeCycle"):
        for node in root.iterfind(f".//bpmn:{tag}", repository.NS):
            node.text = camunda_expression(node.text)
    return root


@contextmanager
def _spiff_clock(clock: FixedClock) -> Iterator[None]:
    class _Now(_dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> _dt.datetime:  # type: ignore[override]
            return clock.now() if tz is None else clock.now().astimezone(tz)

    with mock.patch.object(spiff_timer, "datetime", _Now):
        yield


def run_reference(content: bytes, process_key: str, data: dict[str, Any], script: list[Action],
                  services: ServiceRegistry, start_message: str | None = None) -> Outcome:
    clock = FixedClock(START)
    parser = ReferenceParser()
    parser.add_bpmn_xml(_reference_xml(content), filename=f"{process_key}.bpmn")
    completed: list[str] = []

    def did(task: Any) -> None:
        if task.task_spec.bpmn_id:
            completed.append(task.task_spec.bpmn_id)

    with _spiff_clock(clock):
        workflow = BpmnWorkflow(parser.get_spec(process_key), parser.get_subprocess_specs(process_key),
                                script_engine=ReferenceScriptEngine(services, clock))
        if start_message is None:
            for task in workflow.get_tasks(state=TaskState.READY):
                task.data.update(data)
        workflow.do_engine_steps(did_complete_task=did)
        if start_message is not None:  # the start event waits for it; the variables arrive with it
            workflow.catch(BpmnEvent(CamundaMessageEventDefinition(start_message),
                                     payload={"payload": data, "result_var": None}))
            workflow.do_engine_steps(did_complete_task=did)
        for action in script:
            if action[0] == "complete":
                _, element, values = action
                ready = [t for t in workflow.get_tasks(state=TaskState.READY, manual=True)
                         if t.task_spec.bpmn_id == element]
                assert len(ready) == 1, f"reference: {element} is not the one ready task: {_open(workflow)}"
                ready[0].data.update(values)
                ready[0].run()
                did(ready[0])
            elif action[0] == "complete_all":
                _, element, values = action
                while True:
                    ready = [t for t in workflow.get_tasks(state=TaskState.READY, manual=True)
                             if t.task_spec.bpmn_id == element]
                    if not ready:
                        break
                    ready[0].data.update(values)
                    ready[0].run()
                    did(ready[0])
                    workflow.do_engine_steps(did_complete_task=did)
            elif action[0] == "message":
                _, name, result_var = action
                waiting = [t.task_spec.event_definition for t in workflow.event_manager.tasks.values()]
                waiting += [d for w in waiting for d in getattr(w, "event_definitions", [])]
                kinds = {type(d) for d in waiting if getattr(d, "name", None) == name}
                for kind in kinds:  # SpiffWorkflow gives receive tasks the plain BPMN message definition
                    if issubclass(kind, CamundaMessageEventDefinition):
                        payload: dict[str, Any] = {"payload": {}, "result_var": result_var}
                    else:
                        payload = {}
                    workflow.catch(BpmnEvent(kind(name), payload=payload))
            elif action[0] == "signal":
                workflow.catch(BpmnEvent(SignalEventDefinition(action[1]), payload={}))
            elif action[0] == "wait":
                clock.advance(**action[1])
                workflow.refresh_timers()
            else:
                raise ValueError(action)
            workflow.do_engine_steps(did_complete_task=did)
    return Outcome(completed, _plain(workflow.data), workflow.completed, _open(workflow))


# --- Qifu: persisted, one step per action ---------------------------------------------------------------
def qifu_engine(db_url: str, services: ServiceRegistry, cache_size: int) -> ProcessEngine:
    settings = read(EngineSettings, workflow_cache_size=cache_size)
    return ProcessEngine(db_url, FixedClock(START), services, settings=settings)


def _open_guids(engine: ProcessEngine, iid: int, element: str) -> list[str]:
    with engine.read() as session:
        return list(session.scalars(select(HumanTask.task_guid).where(
            HumanTask.instance_id == iid, HumanTask.spec_id == element).order_by(HumanTask.id)))


def run_qifu(engine: ProcessEngine, content: bytes, process_key: str, business_key: str, data: dict[str, Any],
             script: list[Action], start_message: str | None = None) -> Outcome:
    engine.deploy(content, filename=f"{process_key}.bpmn")
    if start_message is None:
        iid = engine.runtime.start(process_key, business_key, data).instance_id
    else:
        iid = engine.runtime.correlate_message(start_message, business_key, data).instance_id
    for action in script:
        if action[0] == "complete":
            _, element, values = action
            guids = _open_guids(engine, iid, element)
            assert len(guids) == 1, f"qifu: {element} is not one open task: {guids}"
            engine.runtime.complete_task(guids[0], values)
        elif action[0] == "complete_all":
            _, element, values = action
            while guids := _open_guids(engine, iid, element):
                engine.runtime.complete_task(guids[0], values)
        elif action[0] == "message":
            engine.runtime.correlate_message(action[1], business_key, {})
        elif action[0] == "signal":
            assert engine.runtime.broadcast_signal(action[1], {}).delivered
        elif action[0] == "wait":
            engine.clock.advance(**action[1])  # type: ignore[attr-defined]
            engine.management.run_due_timers()
        else:
            raise ValueError(action)
    completed = [c.element for event in engine.history.events(iid) for c in event.completed if c.element]
    workflow = engine.runtime.workflow(iid)
    return Outcome(completed, _plain(workflow.data), workflow.completed, _open(workflow))


def conform(db_url: str, name: str, process_key: str, script: list[Action], *, data: dict[str, Any] | None = None,
            services: ServiceRegistry | None = None,
            reference_differs: Callable[[Outcome, Outcome], None] | None = None,
            start_message: str | None = None) -> Outcome:
    """Run ``diagrams/<name>.bpmn`` on the reference and on Qifu with the workflow cache on and off; assert that
    all three agree and return Qifu's outcome.

    ``reference_differs(qifu, reference)`` is for a documented deviation: it asserts exactly how the reference
    differs, and the two Qifu runs must still agree with each other. ``start_message``: the case is started by
    that message (a message start event) instead of ``runtime.start``, with ``data`` as its variables."""
    content = (DIAGRAMS / f"{name}.bpmn").read_bytes()
    services = services or ServiceRegistry()
    reference = run_reference(content, process_key, dict(data or {}), script, services, start_message)
    outcomes = []
    for cache_size in (512, 0):
        engine = qifu_engine(db_url, services, cache_size)
        outcome = run_qifu(engine, content, process_key, f"{name}-{cache_size}", dict(data or {}), script,
                           start_message)
        outcomes.append(outcome)
        if reference_differs is None:
            assert outcome == reference, f"cache {cache_size}:\n qifu      {outcome}\n reference {reference}"
        else:
            reference_differs(outcome, reference)
        if cache_size:
            assert script == [] or engine.cache.hits > 0, "the cache was not used"
        else:
            assert engine.cache.hits == 0
    assert outcomes[0] == outcomes[1], outcomes
    return outcomes[0]
