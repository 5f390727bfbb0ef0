"""Small BPMN diagrams for the expression-limit tests, built as strings (one process per diagram)."""

from __future__ import annotations

from xml.sax.saxutils import escape

NS = ('xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
      'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
      'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"')
FLOWS = "<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>"
HOSTILE = '__import__("os")'


def definitions(key: str, body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions {NS} id="Defs_{key}" '
            f'targetNamespace="http://qifu.test/{key}">\n  <bpmn:process id="{key}" name="限制测试" '
            f'isExecutable="true">\n{body}\n  </bpmn:process>\n</bpmn:definitions>\n').encode()


def one_element(key: str, element: str) -> bytes:
    """start → ``element`` (id ``t``, flows in ``f1`` and out ``f2``, e.g. :data:`FLOWS`) → end."""
    return definitions(key, f'''
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    {element}
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t" />
    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e" />''')


def script(source: str, ident: str = "t", name: str = "计算", flows: str = FLOWS) -> str:
    return (f'<bpmn:scriptTask id="{ident}" name="{name}">{flows}<bpmn:script>{escape(source)}</bpmn:script>'
            f'</bpmn:scriptTask>')


def condition(expression: str) -> str:
    return f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(expression)}</bpmn:conditionExpression>'


def after_form(key: str, elements: str, first: str = "t", last: str = "t", exit_condition: str = "") -> bytes:
    """start → user task ``fill`` (group g) → ``elements`` (``first`` … ``last``) → user task ``after`` → end.

    Completing ``fill`` runs ``elements`` in the same step, so when they fail ``fill`` stays open.
    """
    to_after = condition(exit_condition) if exit_condition else ""
    return definitions(key, f'''
    <bpmn:startEvent id="s"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="fill" name="填写" camunda:candidateGroups="g">
      <bpmn:extensionElements><camunda:formData><camunda:formField id="v" type="long" /></camunda:formData>
      </bpmn:extensionElements>
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:userTask>
    {elements}
    <bpmn:userTask id="after" name="后续" camunda:candidateGroups="g">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="e"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="fill" />
    <bpmn:sequenceFlow id="f1" sourceRef="fill" targetRef="{first}" />
    <bpmn:sequenceFlow id="f2" sourceRef="{last}" targetRef="after">{to_after}</bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="e" />''')


def gateway_after_form(key: str, expression: str) -> bytes:
    """``fill`` → gateway ``t`` (判断): to ``after`` when ``expression`` holds, else to an end event."""
    return definitions(key, f'''
    <bpmn:startEvent id="s"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="fill" name="填写" camunda:candidateGroups="g">
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="t" name="判断" default="f_no">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f_no</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:userTask id="after" name="后续" camunda:candidateGroups="g">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="e"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="e_no"><bpmn:incoming>f_no</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="fill" />
    <bpmn:sequenceFlow id="f1" sourceRef="fill" targetRef="t" />
    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="after">{condition(expression)}</bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="t" targetRef="e_no" />
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="e" />''')


def loop_after_form(key: str, body: str = "n = 1") -> bytes:
    """``fill`` → script ``count`` (计数) → gateway ``again`` → back to ``count`` (default): no wait state."""
    return after_form(key, f'''
    {script(body, "count", "计数", "<bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>back</bpmn:incoming>"
            "<bpmn:outgoing>to_gw</bpmn:outgoing>")}
    <bpmn:exclusiveGateway id="again" name="再来?" default="back">
      <bpmn:incoming>to_gw</bpmn:incoming><bpmn:outgoing>back</bpmn:outgoing><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="to_gw" sourceRef="count" targetRef="again" />
    <bpmn:sequenceFlow id="back" sourceRef="again" targetRef="count" />''', first="count", last="again",
                      exit_condition="False")


def self_call(key: str) -> bytes:
    """start → call activity ``t`` (再调用自己) calling this very process → end: it never waits."""
    return one_element(key, f'<bpmn:callActivity id="t" name="再调用自己" calledElement="{key}">{FLOWS}'
                            f'</bpmn:callActivity>')


def timer_between_forms(key: str) -> bytes:
    """``fill`` → intermediate timer ``wait`` (P1D) → ``after``."""
    return after_form(key, f'<bpmn:intermediateCatchEvent id="t" name="等待">{FLOWS}<bpmn:timerEventDefinition>'
                           f'<bpmn:timeDuration>P1D</bpmn:timeDuration></bpmn:timerEventDefinition>'
                           f'</bpmn:intermediateCatchEvent>')
