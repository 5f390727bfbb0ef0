"""What a new version of a diagram changes against the deployed one, in the terms a designer thinks in.

The comparison is made on the BPMN XML, element by element (by id, as SpiffWorkflow's spec diff aligns
them): elements added, removed, and changed — with what changed said in Chinese: the name, a timer's value,
a boundary event's interrupting flag, form fields (added, removed, changed), a service task's topic and
parameters, candidate groups / assignee / due date, a flow's source, target or condition, a script. Layout
(diagram interchange) and documentation do not count as changes a case would notice.

Both documents have passed :func:`engine.repository.parse_diagram` (the new one just now, the old one when it
was deployed), so the parser here only needs to be safe, not strict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
NS = {"bpmn": BPMN, "camunda": CAMUNDA}
_C = "{" + CAMUNDA + "}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
# What an element is, in the designer's words (the modeler's Chinese labels).
KINDS = {"startEvent": "开始事件", "endEvent": "结束事件", "userTask": "用户任务", "serviceTask": "服务任务",
         "scriptTask": "脚本任务", "sendTask": "发送任务", "receiveTask": "接收任务", "manualTask": "手工任务",
         "task": "任务", "businessRuleTask": "业务规则任务", "callActivity": "调用活动", "subProcess": "子流程",
         "exclusiveGateway": "排他网关", "parallelGateway": "并行网关", "inclusiveGateway": "包容网关",
         "eventBasedGateway": "事件网关", "boundaryEvent": "边界事件", "intermediateCatchEvent": "中间捕获事件",
         "intermediateThrowEvent": "中间抛出事件", "sequenceFlow": "顺序流", "lane": "泳道"}
_SKIP = {"documentation", "incoming", "outgoing", "extensionElements", "laneSet", "flowNodeRef", "text"}


@dataclass(frozen=True)
class ElementChange:
    element: str
    name: str | None
    kind: str
    details: tuple[str, ...] = ()

    def label(self) -> str:
        return f"{self.kind}「{self.name}」({self.element})" if self.name else f"{self.kind} {self.element}"


@dataclass(frozen=True)
class ChangeSummary:
    """The changes of one diagram against the version before it (``base_version`` None: a new process)."""

    process_key: str
    base_version: int | None
    added: list[ElementChange] = field(default_factory=list)
    removed: list[ElementChange] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)
    process: tuple[str, ...] = ()  # changes of the process itself (its name)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.process)

    def to_dict(self) -> dict[str, Any]:
        def rows(items: list[ElementChange]) -> list[dict[str, Any]]:
            return [{"element": c.element, "name": c.name, "kind": c.kind, "details": list(c.details)} for c in items]

        return {"process_key": self.process_key, "base_version": self.base_version, "process": list(self.process),
                "added": rows(self.added), "removed": rows(self.removed), "changed": rows(self.changed)}


def _text(node: etree._Element | None) -> str:
    return " ".join((node.text or "").split()) if node is not None else ""


def _timer(node: etree._Element) -> str | None:
    definition = node.find("bpmn:timerEventDefinition", NS)
    if definition is None:
        return None
    for tag, label in (("timeDate", "日期"), ("timeDuration", "时长"), ("timeCycle", "循环")):
        value = definition.find(f"bpmn:{tag}", NS)
        if value is not None:
            return f"{label} {_text(value)}"
    return "（未设置）"


def _form(node: etree._Element) -> dict[str, str]:
    fields = {}
    for f in node.iterfind(".//camunda:formData/camunda:formField", NS):
        parts = [f"类型 {f.get('type') or 'string'}"]
        if f.get("label"):
            parts.append(f"标签「{f.get('label')}」")
        if f.get("defaultValue"):
            parts.append(f"默认值 {f.get('defaultValue')}")
        constraints = [c.get("name") + (f"={c.get('config')}" if c.get("config") else "")
                       for c in f.iterfind("camunda:validation/camunda:constraint", NS)]
        if constraints:
            parts.append("约束 " + ",".join(constraints))
        options = [f"{v.get('id')}:{v.get('name')}" for v in f.iterfind("camunda:value", NS)]
        if options:
            parts.append("选项 " + ",".join(options))
        fields[f.get("id") or ""] = "，".join(parts)
    return fields


def _parameters(node: etree._Element, tag: str) -> dict[str, str]:
    return {p.get("name") or "": _text(p) for p in node.iterfind(f".//camunda:inputOutput/camunda:{tag}", NS)}


def _signature(node: etree._Element) -> dict[str, Any]:
    """What of an element a running case notices, as comparable values."""
    tag = etree.QName(node).localname
    sig: dict[str, Any] = {"名称": node.get("name") or ""}
    if tag == "sequenceFlow":
        sig["连线"] = f"{node.get('sourceRef')} → {node.get('targetRef')}"
        sig["条件"] = _text(node.find("bpmn:conditionExpression", NS))
    if tag == "boundaryEvent":
        sig["附着于"] = node.get("attachedToRef") or ""
        sig["中断"] = "否" if node.get("cancelActivity", "true").lower() == "false" else "是"
    timer = _timer(node)
    if timer is not None:
        sig["定时器"] = timer
    for attr, label in (("topic", "服务主题"), ("type", "实现方式"), ("candidateGroups", "候选组"),
                        ("candidateUsers", "候选人"), ("assignee", "办理人"), ("dueDate", "期限"),
                        ("formKey", "表单键")):
        if node.get(_C + attr) is not None:
            sig[label] = node.get(_C + attr)
    if tag == "scriptTask":
        sig["脚本"] = _text(node.find("bpmn:script", NS))
    if tag == "exclusiveGateway" or tag == "inclusiveGateway":
        sig["默认流向"] = node.get("default") or ""
    sig["表单"] = _form(node)
    sig["输入参数"] = _parameters(node, "inputParameter")
    sig["输出参数"] = _parameters(node, "outputParameter")
    return sig


def _describe_dict(label: str, old: dict[str, str], new: dict[str, str]) -> list[str]:
    out = []
    for key in new:
        if key not in old:
            out.append(f"{label}新增 {key}：{new[key] or '（空）'}")
        elif old[key] != new[key]:
            out.append(f"{label} {key}：{old[key] or '（空）'} → {new[key] or '（空）'}")
    out += [f"{label}删除 {key}" for key in old if key not in new]
    return out


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for key in dict.fromkeys([*old, *new]):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) or isinstance(b, dict):
            label = {"表单": "表单字段", "输入参数": "输入参数", "输出参数": "输出参数"}.get(key, key)
            out += _describe_dict(label, a or {}, b or {})
        else:
            out.append(f"{key}：{a or '（无）'} → {b or '（无）'}")
    return out


def _elements(root: etree._Element) -> tuple[str, str | None, dict[str, etree._Element]]:
    """The executable process (as the deploy chose it) and its elements by id (sub-processes included)."""
    processes = root.findall("bpmn:process", NS)
    chosen = [p for p in processes if (p.get("isExecutable") or "").lower() == "true"] or processes
    process = chosen[0]
    found: dict[str, etree._Element] = {}
    for node in process.iter(etree.Element):
        if node is process or etree.QName(node).namespace != BPMN:
            continue
        tag = etree.QName(node).localname
        if tag in _SKIP or node.get("id") is None or tag.endswith("EventDefinition") or tag in (
                "conditionExpression", "timeDate", "timeDuration", "timeCycle", "script"):
            continue
        found[node.get("id")] = node
    return process.get("id") or "", process.get("name"), found


def parse(content: bytes | str) -> etree._Element:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return etree.fromstring(data, _PARSER)


def _change(node: etree._Element, details: list[str] | tuple[str, ...] = ()) -> ElementChange:
    tag = etree.QName(node).localname
    return ElementChange(node.get("id") or "", node.get("name"), KINDS.get(tag, tag), tuple(details))


def summarise(new: bytes | str, old: bytes | str | None, base_version: int | None) -> ChangeSummary:
    """The changes of ``new`` against ``old`` (the newest deployed version; None for a new process key)."""
    key, name, elements = _elements(parse(new))
    if old is None:
        return ChangeSummary(key, None, added=[_change(n) for n in elements.values()])
    _, old_name, before = _elements(parse(old))
    process = (f"流程名称：{old_name or '（无）'} → {name or '（无）'}",) if (old_name or "") != (name or "") else ()
    added = [_change(n) for i, n in elements.items() if i not in before]
    removed = [_change(n) for i, n in before.items() if i not in elements]
    changed = []
    for ident, node in elements.items():
        if ident not in before:
            continue
        old_node = before[ident]
        details = []
        if old_node.tag != node.tag:
            details.append(f"元素类型：{KINDS.get(etree.QName(old_node).localname)} → {KINDS.get(etree.QName(node).localname)}")
        details += _differences(_signature(old_node), _signature(node))
        if details:
            changed.append(_change(node, details))
    return ChangeSummary(key, base_version, added=added, removed=removed, changed=changed, process=process)
