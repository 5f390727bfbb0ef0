"""Every expression kind SpiffWorkflow's Camunda parser knows is compiled at deploy: a hostile one is refused
with the element named, and nothing is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.errors import DeploymentError
from engine.models import Deployment
from tests.security.limit_diagrams import FLOWS, HOSTILE, condition, definitions, one_element, script

X = HOSTILE.replace('"', "&quot;")  # inside an attribute


def user_task(attributes: str = "", extensions: str = "", inner: str = "") -> str:
    ext = f"<bpmn:extensionElements>{extensions}</bpmn:extensionElements>" if extensions else ""
    return f'<bpmn:userTask id="t" name="办理" camunda:candidateGroups="g" {attributes}>{ext}{FLOWS}{inner}</bpmn:userTask>'


def catch_event(definition: str) -> str:
    return f'<bpmn:intermediateCatchEvent id="t" name="等待">{FLOWS}{definition}</bpmn:intermediateCatchEvent>'


def conditional(expression: str) -> str:
    return (f'<bpmn:conditionalEventDefinition><bpmn:condition xsi:type="bpmn:tFormalExpression">{expression}'
            f'</bpmn:condition></bpmn:conditionalEventDefinition>')


def gateway(kind: str, expression: str) -> bytes:
    return definitions("p", f'''
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:{kind} id="t" name="判断" default="f_no">{FLOWS}<bpmn:outgoing>f_no</bpmn:outgoing></bpmn:{kind}>
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming><bpmn:incoming>f_no</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t" />
    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e">{condition(expression)}</bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="t" targetRef="e" />''')


def service(parameter: str) -> str:
    return (f'<bpmn:serviceTask id="t" name="通知" camunda:type="external" camunda:topic="echo">'
            f'<bpmn:extensionElements><camunda:inputOutput>{parameter}</camunda:inputOutput>'
            f'</bpmn:extensionElements>{FLOWS}</bpmn:serviceTask>')


def multi_instance(attributes: str = "", inner: str = "") -> str:
    return user_task(inner=f'<bpmn:multiInstanceLoopCharacteristics {attributes}>{inner}'
                           f'</bpmn:multiInstanceLoopCharacteristics>')


def sub_process(element: str) -> str:
    return (f'<bpmn:subProcess id="t" name="子流程">{FLOWS}<bpmn:startEvent id="ss"><bpmn:outgoing>g1</bpmn:outgoing>'
            f'</bpmn:startEvent>{element}<bpmn:endEvent id="se"><bpmn:incoming>g2</bpmn:incoming></bpmn:endEvent>'
            f'<bpmn:sequenceFlow id="g1" sourceRef="ss" targetRef="inner" />'
            f'<bpmn:sequenceFlow id="g2" sourceRef="inner" targetRef="se" /></bpmn:subProcess>')


MESSAGE = '<bpmn:message id="m" name="通知" />'
HOSTILE_DIAGRAMS: dict[str, tuple[bytes, str]] = {
    # kind: (diagram, what the refusal's element must contain)
    "exclusive gateway condition": (gateway("exclusiveGateway", HOSTILE), "t (判断)"),
    "inclusive gateway condition": (gateway("inclusiveGateway", HOSTILE), "t (判断)"),
    "conditional catch event": (one_element("p", catch_event(conditional(HOSTILE))), "t (等待)"),
    "conditional boundary event": (one_element("p", user_task() + '<bpmn:boundaryEvent id="b" name="条件满足" '
                                              f'attachedToRef="t" cancelActivity="false">{conditional(HOSTILE)}'
                                              '</bpmn:boundaryEvent>'), "b (条件满足)"),
    "multi-instance loopCardinality": (one_element("p", multi_instance(
        inner=f"<bpmn:loopCardinality>{HOSTILE}</bpmn:loopCardinality>")), "t loopCardinality"),
    "multi-instance camunda:collection": (one_element("p", multi_instance(
        f'camunda:collection="{X}" camunda:elementVariable="item"')), "t camunda:collection"),
    "multi-instance camunda:collection as ${}": (one_element("p", multi_instance(
        'camunda:collection="${items}" camunda:elementVariable="item"')), "t camunda:collection"),
    "multi-instance element variable": (one_element("p", multi_instance(
        'camunda:collection="items" camunda:elementVariable="__builtins__"')), "t camunda:elementVariable"),
    "multi-instance completionCondition": (one_element("p", multi_instance(
        'camunda:collection="items" camunda:elementVariable="item"',
        f"<bpmn:completionCondition>{HOSTILE}</bpmn:completionCondition>")), "t completionCondition"),
    "standard loop loopCondition": (one_element("p", user_task(inner=(
        f"<bpmn:standardLoopCharacteristics><bpmn:loopCondition>{HOSTILE}</bpmn:loopCondition>"
        f"</bpmn:standardLoopCharacteristics>"))), "t loopCondition"),
    "script task": (one_element("p", script(f"x = {HOSTILE}")), "t (计算)"),
    "script task in a sub-process": (one_element("p", sub_process(script(
        f"x = {HOSTILE}", "inner", "内部计算", "<bpmn:incoming>g1</bpmn:incoming><bpmn:outgoing>g2</bpmn:outgoing>"))),
        "inner (内部计算)"),
    "ad-hoc sub-process completionCondition": (one_element("p", (
        f'<bpmn:adHocSubProcess id="t" name="自由处理">{FLOWS}<bpmn:task id="a1" />'
        f'<bpmn:completionCondition>{HOSTILE}</bpmn:completionCondition></bpmn:adHocSubProcess>')),
        "t completionCondition"),
    "service input parameter": (one_element("p", service(
        f'<camunda:inputParameter name="what">${{{HOSTILE}}}</camunda:inputParameter>')), "t (通知) 参数 what"),
    "service output parameter": (one_element("p", service(
        f'<camunda:outputParameter name="done">${{{HOSTILE}}}</camunda:outputParameter>')), "t (通知) 参数 done"),
    "timer": (one_element("p", catch_event(f"<bpmn:timerEventDefinition><bpmn:timeDuration>${{{HOSTILE}}}"
                                           f"</bpmn:timeDuration></bpmn:timerEventDefinition>")), "t (等待)"),
    "candidate groups": (one_element("p", user_task().replace('camunda:candidateGroups="g"',
                                                              f'camunda:candidateGroups="${{{X}}}"')),
                         "t (办理) candidateGroups"),
    "assignee": (one_element("p", user_task(f'camunda:assignee="${{{X}}}"')), "t (办理) assignee"),
    "due date": (one_element("p", user_task(f'camunda:dueDate="${{{X}}}"')), "t (办理) dueDate"),
    "form field default value": (one_element("p", user_task(extensions=(
        f'<camunda:formData><camunda:formField id="memo" type="string" defaultValue="${{{X}}}" />'
        f'</camunda:formData>'))), "t (办理) 表单字段 memo defaultValue"),
    "message payload": (one_element("p", (
        f'<bpmn:intermediateThrowEvent id="t" name="发送">{FLOWS}<bpmn:messageEventDefinition messageRef="m" '
        f'camunda:expression="{X}" /></bpmn:intermediateThrowEvent>')).replace(
        b'<bpmn:process', MESSAGE.encode() + b'<bpmn:process'), "t (发送) camunda:expression"),
}
EXPLOSIVE_LITERALS: dict[str, tuple[bytes, str, str]] = {
    "repetition in a script": (one_element("p", script("x = 'a' * 10**10")), "t (计算)", "长度上限"),
    "power in a condition": (gateway("exclusiveGateway", "10**10**10 > 0"), "t (判断)", "位的上限"),
    "width in a parameter": (one_element("p", service(
        '<camunda:inputParameter name="what">${f"{1:>{10**10}}"}</camunda:inputParameter>')), "参数 what", "格式宽度"),
}


def _stored(engine) -> int:
    with engine.session() as session:
        return session.scalar(select(func.count(Deployment.id)))


def _refused(engine, content: bytes) -> DeploymentError:
    before = _stored(engine)
    with pytest.raises(DeploymentError) as info:
        engine.deploy(content, filename="hostile.bpmn")
    assert _stored(engine) == before, "a refused diagram stores nothing"
    return info.value


@pytest.mark.parametrize("kind", sorted(HOSTILE_DIAGRAMS))
def test_a_hostile_expression_of_every_kind_is_refused_naming_the_element(engine, kind: str) -> None:
    content, element = HOSTILE_DIAGRAMS[kind]
    error = _refused(engine, content)
    assert error.element and element in error.element, (error.element, error.message)
    assert "__import__" in error.message or "变量名" in error.message, error.message


@pytest.mark.parametrize("kind", sorted(EXPLOSIVE_LITERALS))
def test_a_literal_that_would_explode_is_refused_at_deploy(engine, kind: str) -> None:
    content, element, words = EXPLOSIVE_LITERALS[kind]
    error = _refused(engine, content)
    assert element in (error.element or ""), error.element
    assert words in error.message, error.message


def test_the_same_constructs_with_harmless_expressions_deploy(engine) -> None:
    harmless = {
        "multi-instance": multi_instance('camunda:collection="items" camunda:elementVariable="item"',
                                         "<bpmn:completionCondition>done</bpmn:completionCondition>"),
        "cardinality": multi_instance(inner="<bpmn:loopCardinality>3</bpmn:loopCardinality>"),
        "loop": user_task(inner="<bpmn:standardLoopCharacteristics><bpmn:loopCondition>again</bpmn:loopCondition>"
                                "</bpmn:standardLoopCharacteristics>"),
        "script": script("a, b = 1, 2\nprint(a)\nmsg = '{}-{}'.format(a, b)\nnote = f'{a:>3}'"),
        "default": user_task(extensions='<camunda:formData><camunda:formField id="memo" type="string" '
                                        'defaultValue="${now()}" /></camunda:formData>'),
        "conditional": catch_event(conditional("ready")),
    }
    for number, (name, element) in enumerate(harmless.items()):
        result = engine.deploy(one_element(f"ok{number}", element), filename=f"{name}.bpmn")
        assert result.created, name
