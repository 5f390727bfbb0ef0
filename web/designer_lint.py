"""What Qifu's bpmnlint rules (tools/bpmnlint-plugin-qifu) need from the server, and the CI's way to get it.

- :func:`lint_data`: the registered service-task topics (:func:`handlers.register`), the form field types
  and constraints the task forms can fill (:mod:`engine.forms`). The plugin ships a snapshot of it
  (``qifu-data.json``; a test keeps it equal to this), the modeler fetches it live from
  ``/processes/api/lint-data``.
- :func:`collect`: every expression of a diagram with the *kind* that decides how Qifu reads it — the same
  walk as the plugin's ``collectExpressions`` (tools/bpmnlint-plugin-qifu/expressions.js).
- :func:`verdicts`: each (kind, text) judged by :func:`engine.repository.check_expression`, i.e. compiled
  the way a deploy compiles it. The modeler asks ``/processes/api/expressions`` while the designer edits;
  ``scripts/check-bpmn.sh`` runs ``python -m web.designer_lint FILE…`` and hands the result to the plugin.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lxml import etree

from engine.forms import SUPPORTED_CONSTRAINTS, SUPPORTED_TYPES
from engine.repository import EXPRESSION_KINDS, check_expression
from engine.services import ServiceRegistry

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
NS = {"bpmn": BPMN, "camunda": CAMUNDA}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
USER_TASK_ATTRIBUTES = ("candidateGroups", "candidateUsers", "assignee", "dueDate")
MAX_CHECKS = 2000  # expressions one request may ask about (a diagram has tens)


def key(kind: str, text: str) -> str:
    """How the plugin files a verdict: the kind, a NUL, the trimmed text."""
    return f"{kind}\u0000{text.strip()}"


def lint_data(services: ServiceRegistry) -> dict[str, Any]:
    return {"topics": {topic: services.get(topic).description for topic in services.topics()},  # type: ignore[union-attr]
            "formTypes": list(SUPPORTED_TYPES), "constraints": list(SUPPORTED_CONSTRAINTS),
            "expressionKinds": list(EXPRESSION_KINDS)}


def _owner(node: etree._Element) -> str:
    """The id of the flow element an expression belongs to (an event definition's own id is not it)."""
    while node is not None and (etree.QName(node).namespace != BPMN or node.get("id") is None
                                or etree.QName(node).localname.endswith("EventDefinition")):
        node = node.getparent()
    return node.get("id") if node is not None else ""


def collect(content: bytes) -> list[tuple[str, str, str]]:
    """(kind, text, element id) of every expression in a diagram."""
    root = etree.fromstring(content, _PARSER)
    found: list[tuple[str, str, str]] = []

    def add(kind: str, text: str | None, node: etree._Element) -> None:
        if text is not None and text.strip():
            found.append((kind, text.strip(), _owner(node)))

    for node in root.iterfind(".//bpmn:conditionExpression", NS):
        add("condition", node.text, node)
    for node in root.iterfind(".//bpmn:conditionalEventDefinition/bpmn:condition", NS):
        add("condition", node.text, node)
    for tag, kind in (("timeDate", "timer:date"), ("timeDuration", "timer:duration"), ("timeCycle", "timer:cycle")):
        for node in root.iterfind(f".//bpmn:timerEventDefinition/bpmn:{tag}", NS):
            add(kind, node.text, node)
    for task in root.iterfind(".//bpmn:serviceTask", NS):
        for tag in ("inputParameter", "outputParameter"):
            for node in task.iterfind(f"bpmn:extensionElements/camunda:inputOutput/camunda:{tag}", NS):
                add("parameter", node.text, node)
    for node in root.iterfind(".//bpmn:scriptTask/bpmn:script", NS):
        add("script", node.text, node)
    for task in root.iterfind(".//bpmn:userTask", NS):
        for attr in USER_TASK_ATTRIBUTES:
            add("attribute", task.get(f"{{{CAMUNDA}}}{attr}"), task)
        for node in task.iterfind("bpmn:extensionElements/camunda:formData/camunda:formField", NS):
            add("default", node.get("defaultValue"), node)
    for tag in ("loopCardinality", "completionCondition"):
        for node in root.iterfind(f".//bpmn:multiInstanceLoopCharacteristics/bpmn:{tag}", NS):
            add("expression", node.text, node)
    return found


def verdicts(pairs: Iterable[tuple[str, str]]) -> dict[str, str | None]:
    """Deploy's verdict on each (kind, text): None when it compiles, else the Chinese reason."""
    out: dict[str, str | None] = {}
    for kind, text in pairs:
        if kind in EXPRESSION_KINDS and key(kind, text) not in out:
            out[key(kind, text)] = check_expression(kind, text)
    return out


def _registry() -> ServiceRegistry:
    import handlers

    registry = ServiceRegistry()
    handlers.register(registry)
    return registry


def main(argv: list[str] | None = None) -> int:
    """``python -m web.designer_lint [--data] FILE…``: the lint data and the verdicts on the files' expressions."""
    args = list(sys.argv[1:] if argv is None else argv)
    data = lint_data(_registry())
    if args[:1] == ["--data"]:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    pairs: list[tuple[str, str]] = []
    for name in args:
        try:
            pairs += [(kind, text) for kind, text, _ in collect(Path(name).read_bytes())]
        except (OSError, etree.XMLSyntaxError) as exc:
            print(f"designer_lint: {name}: {exc}", file=sys.stderr)
    print(json.dumps({**data, "verdicts": verdicts(pairs)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
