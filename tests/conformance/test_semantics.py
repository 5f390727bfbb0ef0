"""Where Qifu's semantics were changed to run what designers draw: event-based gateway timers as timer rows
fired exactly once, isExecutable read as Camunda 7 reads it, and constructs refused at deploy with the element
and a reason instead of being accepted and left to hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine.errors import DeploymentError
from engine.models import Timer
from engine.process_engine import ProcessEngine

DIAGRAMS = Path(__file__).parent / "diagrams"

BPMN = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'id="D" targetNamespace="http://qifu.test/semantics">{body}</bpmn:definitions>')


def process(key: str, attrs: str = 'isExecutable="true"', inner: str = "") -> str:
    inner = inner or (f'<bpmn:startEvent id="s_{key}"><bpmn:outgoing>f_{key}</bpmn:outgoing></bpmn:startEvent>'
                      f'<bpmn:endEvent id="e_{key}"><bpmn:incoming>f_{key}</bpmn:incoming></bpmn:endEvent>'
                      f'<bpmn:sequenceFlow id="f_{key}" sourceRef="s_{key}" targetRef="e_{key}" />')
    return f'<bpmn:process id="{key}" {attrs}>{inner}</bpmn:process>'


def timers(engine: ProcessEngine, instance_id: int) -> dict[str, str]:
    with engine.read() as session:
        return {t.spec_id: t.status for t in session.scalars(select(Timer).where(Timer.instance_id == instance_id))}


# --- event-based gateways -------------------------------------------------------------------------------
def test_event_gateway_timers_have_rows_and_the_first_to_fire_cancels_the_others(engine: ProcessEngine) -> None:
    engine.deploy((DIAGRAMS / "event_gateway_two_timers.bpmn").read_bytes(), filename="ebg.bpmn")
    iid = engine.runtime.start("ebg", "EBG-1", {}).instance_id
    assert timers(engine, iid) == {"Soon": "waiting", "Late": "waiting"}
    engine.clock.advance(hours=5)  # both are due: one executor batch claims both
    assert engine.management.run_due_timers() == 1
    assert timers(engine, iid) == {"Soon": "fired", "Late": "cancelled"}
    events = engine.history.events(iid)
    assert [e.action for e in events].count("timer_fired") == 1
    assert [c.element for c in events[-1].completed] == ["Soon", "E1"]
    assert engine.runtime.instance("EBG-1").status == "completed"
    with engine.read() as session:
        late = session.scalar(select(Timer.id).where(Timer.instance_id == iid, Timer.spec_id == "Late"))
    assert engine.management.fire_timer(late) is False  # a second executor that held it finds it cancelled


def test_event_gateway_timer_that_is_not_due_keeps_waiting(engine: ProcessEngine) -> None:
    engine.deploy((DIAGRAMS / "event_gateway_two_timers.bpmn").read_bytes(), filename="ebg.bpmn")
    iid = engine.runtime.start("ebg", "EBG-2", {}).instance_id
    engine.clock.advance(minutes=30)
    assert engine.management.run_due_timers() == 0
    assert timers(engine, iid) == {"Soon": "waiting", "Late": "waiting"}
    active = {a.element: a.state for a in engine.history.events(iid)[-1].active}
    assert active == {"Soon": "waiting", "Late": "waiting", "Reply": "waiting"}


GATEWAY = ('<bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>'
           '<bpmn:eventBasedGateway id="g"{attrs}><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
           '<bpmn:outgoing>f3</bpmn:outgoing></bpmn:eventBasedGateway>'
           '<bpmn:intermediateCatchEvent id="t"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>'
           '<bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>'
           '</bpmn:intermediateCatchEvent>{second}'
           '<bpmn:endEvent id="e"><bpmn:incoming>f4</bpmn:incoming><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>'
           '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="g" /><bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="t" />'
           '<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="r" /><bpmn:sequenceFlow id="f4" sourceRef="t" targetRef="e" />'
           '<bpmn:sequenceFlow id="f5" sourceRef="r" targetRef="e" />')
CATCH = ('<bpmn:intermediateCatchEvent id="r"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>'
         '<bpmn:timerEventDefinition><bpmn:timeDuration>PT2H</bpmn:timeDuration></bpmn:timerEventDefinition>'
         '</bpmn:intermediateCatchEvent>')
RECEIVE = ('<bpmn:receiveTask id="r" messageRef="m"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>'
           '</bpmn:receiveTask>')


@pytest.mark.parametrize(("attrs", "second", "element", "words"), [
    (' instantiate="true"', CATCH, "g", ["启动流程", "instantiate"]),
    (' eventGatewayType="Parallel"', CATCH, "g", ["并行事件网关"]),
    ("", RECEIVE, "r", ["中间捕获事件", "接收任务"]),
])
def test_event_gateways_qifu_cannot_run_are_refused(engine: ProcessEngine, attrs: str, second: str, element: str,
                                                    words: list[str]) -> None:
    body = '<bpmn:message id="m" name="m" />' + process("gw", inner=GATEWAY.format(attrs=attrs, second=second))
    with pytest.raises(DeploymentError) as refused:
        engine.deploy(BPMN.format(body=body).encode(), filename="gw.bpmn")
    assert refused.value.element == element, refused.value.message
    for word in words:
        assert word in refused.value.message, refused.value.message


# --- isExecutable ---------------------------------------------------------------------------------------
def test_a_collaboration_deploys_its_executable_pool(engine: ProcessEngine) -> None:
    """Camunda 7: a pool without isExecutable (or with false) is documentation; the executable one deploys."""
    body = process("shown", "") + process("docs", 'isExecutable="false"') + process("runs")
    result = engine.deploy(BPMN.format(body=body).encode(), filename="pools.bpmn")
    assert result.deployment.process_key == "runs"


@pytest.mark.parametrize("attrs", ["", 'isExecutable="false"'])
def test_no_executable_process_is_refused_naming_it(engine: ProcessEngine, attrs: str) -> None:
    """Camunda 7 would deploy nothing (a missing attribute is not executable in a new deployment); Qifu says so."""
    with pytest.raises(DeploymentError) as refused:
        engine.deploy(BPMN.format(body=process("lonely", attrs)).encode(), filename="lonely.bpmn")
    assert refused.value.element == "lonely"
    assert 'isExecutable="true"' in refused.value.message and "Camunda" in refused.value.message


# --- unsupported elements ---------------------------------------------------------------------------------
def test_an_element_type_spiffworkflow_cannot_run_is_refused_in_chinese(engine: ProcessEngine) -> None:
    inner = ('<bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>'
             '<bpmn:complexGateway id="cx"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
             '</bpmn:complexGateway><bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>'
             '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="cx" /><bpmn:sequenceFlow id="f2" sourceRef="cx" targetRef="e" />')
    with pytest.raises(DeploymentError) as refused:
        engine.deploy(BPMN.format(body=process("cxp", inner=inner)).encode(), filename="cx.bpmn")
    assert refused.value.element == "cx" and "暂不支持" in refused.value.message and "complexGateway" in refused.value.message


LINE = ('<bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing>{start}</bpmn:startEvent>'
        '<bpmn:intermediateCatchEvent id="w"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>{wait}'
        '</bpmn:intermediateCatchEvent><bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="w" /><bpmn:sequenceFlow id="f2" sourceRef="w" targetRef="e" />')
TIMER = '<bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>'


@pytest.mark.parametrize(("start", "wait", "element", "words"), [
    ('<bpmn:signalEventDefinition signalRef="sg" />', TIMER, "s", ["信号开始事件"]),
])
def test_events_nothing_could_ever_trigger_are_refused(engine: ProcessEngine, start: str, wait: str, element: str,
                                                       words: list[str]) -> None:
    body = ('<bpmn:message id="m" name="m" /><bpmn:signal id="sg" name="go" />'
            + process("waits", inner=LINE.format(start=start, wait=wait)))
    with pytest.raises(DeploymentError) as refused:
        engine.deploy(BPMN.format(body=body).encode(), filename="waits.bpmn")
    assert refused.value.element == element, refused.value.message
    for word in words:
        assert word in refused.value.message, refused.value.message


@pytest.mark.parametrize("wait", ['<bpmn:messageEventDefinition messageRef="m" />',
                                  '<bpmn:signalEventDefinition signalRef="sg" />'])
def test_message_and_signal_catch_events_deploy_since_they_can_be_delivered(engine: ProcessEngine, wait: str) -> None:
    body = '<bpmn:message id="m" name="m" /><bpmn:signal id="sg" name="go" />' + process(
        "waits", inner=LINE.format(start="", wait=wait))
    assert engine.deploy(BPMN.format(body=body).encode(), filename="waits.bpmn").created


@pytest.mark.parametrize(("tag", "definition", "word"), [
    ("endEvent", '<bpmn:signalEventDefinition signalRef="sg" />', "signalEventDefinition"),  # SpiffWorkflow drops it
    ("intermediateThrowEvent", '<bpmn:linkEventDefinition name="L" />', "linkEventDefinition"),
    ("intermediateThrowEvent", "<bpmn:compensateEventDefinition />", "compensateEventDefinition"),
])
def test_an_event_definition_spiffworkflow_would_ignore_is_refused(engine: ProcessEngine, tag: str, definition: str,
                                                                   word: str) -> None:
    inner = ('<bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>'
             f'<bpmn:{tag} id="x"><bpmn:incoming>f1</bpmn:incoming>{definition}</bpmn:{tag}>'
             '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x" />')
    body = '<bpmn:signal id="sg" name="go" />' + process("ignored", inner=inner)
    with pytest.raises(DeploymentError) as refused:
        engine.deploy(BPMN.format(body=body).encode(), filename="ignored.bpmn")
    assert refused.value.element == "x" and word in refused.value.message and "忽略" in refused.value.message
