"""Fuzzing the deploy path: a mutated diagram is either accepted or refused with a DeploymentError.

Hypothesis mutates the seed diagrams (processes/, tests/diagrams/, two of tests/security/diagrams/) the ways a
hand-edited or broken file goes wrong: elements deleted, duplicated or moved, tags swapped, attributes set
to odd values, children dropped, text replaced, the bytes truncated or spliced with garbage (non-UTF-8,
NUL, DTD fragments). ``repository.parse_diagram`` and, when it accepts, ``repository.spec_to_json`` must
answer with a value or a :class:`DeploymentError`: any other exception would be a traceback in
``qifu deploy``. What the fuzzer found is kept as explicit regression cases at the end.

``QIFU_FUZZ_EXAMPLES`` raises the number of examples for a longer local run (default 200 per test).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from engine.errors import DeploymentError
from engine.repository import parse_diagram, spec_to_json
from engine.services import ServiceRegistry

ROOT = Path(__file__).resolve().parents[2]
SEED_PATHS = sorted([*(ROOT / "processes").glob("*.bpmn"), *(ROOT / "tests" / "diagrams").glob("*.bpmn"),
                     *(Path(__file__).parent / "diagrams" / name for name in ("constructs.bpmn", "messages.bpmn"))])
SEEDS = [p.read_bytes() for p in SEED_PATHS]
EXAMPLES = int(os.environ.get("QIFU_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
TAGS = [BPMN + t for t in (
    "task", "userTask", "serviceTask", "sendTask", "receiveTask", "businessRuleTask", "scriptTask",
    "manualTask", "callActivity", "subProcess", "transaction", "adHocSubProcess", "startEvent", "endEvent",
    "boundaryEvent", "intermediateCatchEvent", "intermediateThrowEvent", "exclusiveGateway", "parallelGateway",
    "inclusiveGateway", "eventBasedGateway", "complexGateway", "sequenceFlow", "incoming", "outgoing",
    "timerEventDefinition", "timeDate", "timeDuration", "timeCycle", "messageEventDefinition",
    "signalEventDefinition", "errorEventDefinition", "escalationEventDefinition", "conditionalEventDefinition",
    "terminateEventDefinition", "cancelEventDefinition", "compensateEventDefinition", "linkEventDefinition",
    "condition", "conditionExpression", "script", "multiInstanceLoopCharacteristics", "loopCardinality",
    "completionCondition", "standardLoopCharacteristics", "loopCondition", "message", "signal", "error",
    "escalation", "process", "laneSet", "lane", "flowNodeRef", "extensionElements", "ioSpecification",
    "dataInput", "dataOutput", "dataObject", "dataObjectReference", "dataInputAssociation",
    "dataOutputAssociation", "correlationProperty", "correlationPropertyRetrievalExpression",
    "messagePath", "collaboration", "participant", "messageFlow", "definitions")] + [CAMUNDA + t for t in (
    "formData", "formField", "validation", "constraint", "value", "properties", "property", "inputOutput",
    "inputParameter", "outputParameter", "list", "map", "entry", "script")]
ATTRIBUTES = ["id", "name", "sourceRef", "targetRef", "attachedToRef", "cancelActivity", "default",
              "isExecutable", "messageRef", "signalRef", "errorRef", "escalationRef", "calledElement",
              "processRef", "isSequential", "loopMaximum", "parallelMultiple", "scriptFormat", "type",
              "label", "defaultValue", "config", "errorCode", "escalationCode", "triggeredByEvent",
              "isInterrupting", XSI_TYPE] + [CAMUNDA + a for a in (
    "type", "topic", "candidateGroups", "candidateUsers", "assignee", "dueDate", "formKey", "decisionRef",
    "collection", "elementVariable", "expression", "resultVariable", "class", "delegateExpression",
    "asyncBefore", "calledElementBinding")]
ODD_TEXT = ["", " ", "'", '"', "\"]", "')]", "${", "}", "${}", "${x", "${__import__('os').system('id')}",
            "__class__", "None", "true", "false", "TRUE", "-1", "0", "1e309", "99999999999999999999",
            "P", "PT", "R/", "R-1/P1D", "R3/PT0S", "P1Y2M3W4DT5H6M7.5S", "9999-99-99", "2026-02-30",
            "2026-10-09T17:00:00+08:00", "x" * 300, "名" * 500, "a b", "#", "bpmn:tFormalExpression",
            "textarea", "enum", "long", "date", "external", "Start", "End", "Root", "x.EndJoin",
            "\t\n", "&", "<", "]]>", "\u202e", "\U0001f600", "ǅ"]

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _ids(root: etree._Element) -> list[str]:
    return [e.get("id") for e in root.iter(etree.Element) if e.get("id")]


@st.composite
def odd_values(draw: st.DrawFn, root: etree._Element) -> str:
    ids = _ids(root)
    choices = [st.sampled_from(ODD_TEXT), st.text(max_size=12).filter(_xml_safe)]
    if ids:
        choices.append(st.sampled_from(ids))
    return draw(st.one_of(choices))


def _xml_safe(text: str) -> bool:
    """Characters lxml lets us put into a tree (XML 1.0 Char); the byte mutations cover the others."""
    return all(c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD or ord(c) >= 0x10000
               for c in text)


def _semantic(root: etree._Element) -> list[etree._Element]:
    """The elements that make the process (not its diagram interchange, which the XSD mostly guards)."""
    return [e for e in root.iter(etree.Element) if not etree.QName(e).namespace.endswith(("/DI", "/DC"))]


@st.composite
def tree_mutation(draw: st.DrawFn, root: etree._Element) -> None:
    """Change ``root`` in place, once."""
    elements = list(root.iter(etree.Element))
    node = draw(st.sampled_from(_semantic(root) if draw(st.integers(0, 9)) else elements))
    op = draw(st.sampled_from(["delete", "duplicate", "move", "attribute", "drop_attribute", "retag",
                               "clear", "insert", "text"]))
    parent = node.getparent()
    if op == "delete" and parent is not None:
        parent.remove(node)
    elif op == "duplicate" and parent is not None:
        parent.insert(parent.index(node), copy.deepcopy(node))
    elif op == "move" and parent is not None:
        target = draw(st.sampled_from(elements))
        if target is not node and node not in target.iterancestors():
            target.append(node)
    elif op == "attribute":
        node.set(draw(st.sampled_from(ATTRIBUTES + list(node.attrib))), draw(odd_values(root)))
    elif op == "drop_attribute" and node.attrib:
        del node.attrib[draw(st.sampled_from(sorted(node.attrib)))]
    elif op == "retag":
        node.tag = draw(st.sampled_from(TAGS))
    elif op == "clear":
        for child in list(node):
            node.remove(child)
    elif op == "insert":
        child = etree.SubElement(node, draw(st.sampled_from(TAGS)))
        for attr in draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=3)):
            child.set(attr, draw(odd_values(root)))
        if draw(st.booleans()):
            child.text = draw(odd_values(root))
    elif op == "text":
        node.text = draw(odd_values(root))


GARBAGE = [b"\xff\xfe", b"\xc3\x28", b"\x00", b"\xed\xa0\x80", b"<!DOCTYPE d [<!ENTITY e \"x\">]>", b"&e;",
           b"&#0;", b"&#xD800;", b"<![CDATA[", b"]]>", b"<?xml version='1.0'?>", b"</bpmn:process>",
           b"<bpmn:process id=\"p2\" isExecutable=\"true\">", b"xmlns:bpmn=\"urn:x\"", b"\xef\xbb\xbf",
           b"<", b">", b"\"", b"'", "名".encode()]


@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    op = draw(st.sampled_from(["truncate", "insert", "flip", "splice"]))
    at = draw(st.integers(0, len(data)))
    if op == "truncate":
        return data[:at]
    if op == "insert":
        junk = draw(st.one_of(st.sampled_from(GARBAGE), st.binary(min_size=1, max_size=8)))
        return data[:at] + junk + data[at:]
    if op == "flip":
        if at == len(data):
            return data
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    end = draw(st.integers(at, min(len(data), at + 200)))  # splice: a piece moved elsewhere
    piece, rest = data[at:end], data[:at] + data[end:]
    where = draw(st.integers(0, len(rest)))
    return rest[:where] + piece + rest[where:]


def _services() -> ServiceRegistry:
    import handlers

    registry = ServiceRegistry()
    handlers.register(registry)
    for topic in ("echo", "work"):  # the test diagrams' topics
        registry.register(topic, lambda call: {}, "fuzz")
    return registry


SERVICES = _services()


def deploys_or_refuses(content: bytes) -> None:
    """The property: a value or a DeploymentError, from parsing and (when accepted) from serialising."""
    try:
        parsed = parse_diagram(content, "fuzz.bpmn", SERVICES)
        spec_to_json(parsed)
    except DeploymentError as exc:
        assert exc.message, "a refusal says why"


def test_every_seed_deploys() -> None:
    """The fuzzer starts from diagrams that deploy: a mutation is what makes them go wrong."""
    assert len(SEEDS) >= 10
    for path, content in zip(SEED_PATHS, SEEDS, strict=True):
        spec_to_json(parse_diagram(content, path.name, SERVICES))


@FUZZ
@given(data=st.data(), seed=st.sampled_from(range(len(SEEDS))), steps=st.integers(1, 4), keep_di=st.booleans())
def test_mutated_trees(data: st.DataObject, seed: int, steps: int, keep_di: bool) -> None:
    root = etree.fromstring(SEEDS[seed], _PARSER)
    if not keep_di:  # a diagram without its layout still deploys; mutations then hit the process itself
        for di in root.findall("{http://www.omg.org/spec/BPMN/20100524/DI}BPMNDiagram"):
            root.remove(di)
    for _ in range(steps):
        data.draw(tree_mutation(root))
    deploys_or_refuses(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@FUZZ
@given(data=st.data(), seed=st.sampled_from(range(len(SEEDS))), steps=st.integers(1, 3))
def test_mutated_bytes(data: st.DataObject, seed: int, steps: int) -> None:
    content = SEEDS[seed]
    for _ in range(steps):
        content = data.draw(byte_mutation(content))
    deploys_or_refuses(content)


# --- what the fuzzer found, kept as regressions ------------------------------------------------------
# SpiffWorkflow 3.2 answered these with its own exception repr (TypeError from its error reporting,
# NotImplementedError) instead of a reason; now each is a specific refusal on the element.
SIMPLE = (ROOT / "tests" / "diagrams" / "simple.bpmn").read_text(encoding="utf-8")
TIMER = """<bpmn:timerEventDefinition id="remind_def">
        <bpmn:timeDate>${working_days_after(received, 2)}</bpmn:timeDate>
      </bpmn:timerEventDefinition>"""
REGRESSIONS: dict[str, tuple[str, str, str]] = {
    # name: (text in simple.bpmn, its replacement, what the refusal must say)
    "unknown errorRef": (TIMER, '<bpmn:errorEventDefinition id="remind_def" errorRef="nope" />', "errorRef"),
    "unknown signalRef": (TIMER, '<bpmn:signalEventDefinition id="remind_def" signalRef="nope" />', "signalRef"),
    "unknown escalationRef": (TIMER, '<bpmn:escalationEventDefinition id="remind_def" escalationRef="nope" />',
                              "escalationRef"),
    "boundary event without definition": (TIMER, "", "事件定义"),
    "boundary event with a link definition": (TIMER, '<bpmn:linkEventDefinition id="remind_def" name="l" />',
                                              "事件定义"),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzzer_findings_are_specific_refusals(name: str) -> None:
    old, new, words = REGRESSIONS[name]
    assert old in SIMPLE
    with pytest.raises(DeploymentError) as refused:
        spec_to_json(parse_diagram(SIMPLE.replace(old, new, 1).encode(), "fuzz.bpmn", SERVICES))
    assert refused.value.element == "remind"
    assert words in refused.value.message and "Error(" not in refused.value.message, refused.value.message
