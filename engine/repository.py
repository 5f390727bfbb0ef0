"""Deployments (Camunda's RepositoryService): validate a diagram, version it, store it once, cache its spec.

Validation happens entirely before anything is written, and every refusal is a :class:`DeploymentError`
that names the element and the reason:

1. size limit; no DTD, no entities (XML bombs and external entities never reach the parser's expansion);
2. the BPMN 2.0 XSD; unique ids;
3. SpiffWorkflow parsing (with Qifu's Camunda additions, :mod:`engine.bpmn`);
4. every service-task topic is registered; every expression compiles under :mod:`engine.scripting`;
   every literal timer value parses;
5. the spec serialises and restores (a case of it must be able to start).

Each step has its specific checks; behind them :func:`_refusing` turns anything unforeseen that lxml or
SpiffWorkflow raises into a refusal naming the step, so ``qifu deploy`` never answers with a traceback.
Constructs Qifu cannot run are refused, never accepted and left to hang: by the parser (:mod:`engine.bpmn`)
business-rule tasks (no DMN), form fields the forms cannot fill, event-based gateways it cannot run, event
definitions SpiffWorkflow would ignore; here signal start events, and a file without exactly one
executable main process (``isExecutable`` read as Camunda 7 reads it). Message and signal catch events deploy:
a message or signal thrown in the case reaches them, and so do messages and signals from outside
(:meth:`engine.runtime.RuntimeService.correlate_message` / ``broadcast_signal``). Files deployed together
resolve each other's call activities (:func:`parse_diagram`'s ``companions``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import keyword
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask, StandardLoopTask
from SpiffWorkflow.camunda.specs.user_task import UserTask
from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from .bpmn import (
    ExternalServiceTask,
    QifuParser,
    camunda_expression,
    make_serializer,
    parameter_expression,
    timer_definition,
)
from .db import Database
from .diagram_changes import ChangeSummary, summarise
from .errors import ConflictError, DeploymentError, ExpressionError, NotFoundError
from .models import Deployment, Instance
from .scripting import compile_expression, compile_script
from .services import ServiceRegistry
from .sql import Prepared

MAX_DIAGRAM_BYTES = 2 * 1024 * 1024  # the default of QIFU_MAX_DIAGRAM_BYTES (engine.settings)
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NS = {"bpmn": BPMN_NS}
ID_NAMESPACES = frozenset({BPMN_NS, "http://www.omg.org/spec/BPMN/20100524/DI",
                           "http://www.omg.org/spec/DD/20100524/DC", "http://www.omg.org/spec/DD/20100524/DI"})
RESERVED_IDS = frozenset({"Start", "End", "Root"})  # SpiffWorkflow's own task-spec names

_serializer = make_serializer()
_log = logging.getLogger(__name__)


@dataclass
class ParsedDiagram:
    process_key: str
    name: str | None
    spec: Any
    subprocess_specs: dict[str, Any]
    called_files: list[bytes] = field(default_factory=list)  # other files of the deployment its call activities use


@dataclass
class DeployResult:
    deployment: Deployment
    created: bool


@cache
def _validator() -> BpmnValidator:
    return BpmnValidator()


def _safe_parse(content: bytes, max_bytes: int = MAX_DIAGRAM_BYTES) -> etree._Element:
    if len(content) > max_bytes:
        raise DeploymentError(f"文件过大：{len(content)} 字节，上限 {max_bytes} 字节 (file too large)")
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        raise DeploymentError("文件必须是 UTF-8 编码 (the file must be UTF-8)") from None
    lowered = content[:65536].lower()
    if b"<!doctype" in lowered or b"<!entity" in content.lower():
        raise DeploymentError("不接受含 DTD 或实体声明的 XML (DTDs and entities are refused)")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_blank_text=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise DeploymentError(f"XML 格式错误 (not well-formed): {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise DeploymentError("不接受含 DTD 或实体声明的 XML (DTDs and entities are refused)")
    for node in root.iter():
        if isinstance(node, etree._Entity):
            raise DeploymentError("不接受含实体引用的 XML (entity references are refused)")
    return root


def _describe(node: etree._Element) -> str:
    tag = etree.QName(node).localname
    ident, name = node.get("id"), node.get("name")
    return f"{tag} {ident}" + (f" ({name})" if name else "")


def _check_schema(root: etree._Element, filename: str | None) -> None:
    if etree.QName(root).namespace != BPMN_NS or etree.QName(root).localname != "definitions":
        raise DeploymentError("根元素必须是 BPMN 2.0 的 bpmn:definitions (not a BPMN 2.0 file)")
    seen: dict[str, etree._Element] = {}
    for node in root.iter(etree.Element):
        ident = node.get("id")
        # Only BPMN/DI ids are XML ids. Extension ids are names: camunda:formField id is the variable a
        # form sets (several tasks may set the same one), camunda:value id an enum option.
        if ident is None or etree.QName(node).namespace not in ID_NAMESPACES:
            continue
        if ident in RESERVED_IDS or ident.endswith(".EndJoin"):
            raise DeploymentError(f"元素 id '{ident}' 与引擎内部名称冲突，请改用其他 id (reserved id)",
                                  element=_describe(node))
        if ident in seen:
            raise DeploymentError(
                f"元素 id 重复 (duplicate id): {_describe(seen[ident])} 与第 {node.sourceline} 行的 "
                f"{etree.QName(node).localname}", element=ident)
        seen[ident] = node
    try:
        _validator().validate(root, filename)
    except ValidationException as exc:
        reason = str(exc.args[0]) if exc.args else type(exc).__name__
        raise DeploymentError(f"不符合 BPMN 2.0 模式 (schema error, line {exc.line_number}): {reason}",
                              element=_element_at(root, exc.line_number, reason)) from None


def _element_at(root: etree._Element, line: Any, reason: str) -> str | None:
    """The element a schema error is about: on its line, preferably with the tag the message names."""
    named = re.search(r"Element '([^']+)'", reason)
    candidates = [n for n in root.iter(etree.Element) if n.sourceline == line]
    chosen = next((n for n in candidates if named and n.tag == named.group(1)), None)
    chosen = chosen if chosen is not None else (candidates[0] if candidates else None)
    if chosen is None:
        return None
    return chosen.get("id") or etree.QName(chosen).localname


def _normalise_conditions(root: etree._Element) -> None:
    """Accept Camunda's ``${…}`` in conditions, as for timers: the spec sees a Python expression."""
    for node in root.iterfind(".//bpmn:conditionExpression", NS):
        if node.text:
            node.text = camunda_expression(node.text)


def _executable_process(root: etree._Element) -> etree._Element:
    """The process to deploy: the one marked ``isExecutable="true"``.

    As Camunda 7 reads a new deployment, a process without the attribute (or with ``false``) is not
    executable: a collaboration's documentation-only pools are left out. Camunda would then deploy
    nothing; Qifu refuses, naming the processes, so a designer never gets a deployment nothing can start.
    """
    processes = root.findall("bpmn:process", NS)
    chosen = [p for p in processes if (p.get("isExecutable") or "").strip().lower() == "true"]
    if len(chosen) > 1:  # a main process and the processes its call activities call: the one nothing calls
        called = {node.get("calledElement") for node in root.iterfind(".//bpmn:callActivity", NS)}
        roots = [p for p in chosen if p.get("id") not in called]
        chosen = roots if len(roots) == 1 else chosen
    if not chosen and processes:
        names = "、".join(_describe(p) for p in processes)
        raise DeploymentError(
            f"没有可执行流程：{names} 未标记 isExecutable=\"true\"（与 Camunda 7 相同，缺省或为 false 的流程不部署）"
            "(no process is marked executable)", element=processes[0].get("id") or None)
    if len(chosen) != 1:
        raise DeploymentError(
            f"文件必须恰好包含一个可执行的主流程（其余可执行流程须由它的调用活动调用）(exactly one executable "
            f"process that no call activity calls), 发现 {len(chosen)} 个")
    process = chosen[0]
    key, name = (process.get("id") or "").strip(), process.get("name")
    if not key:
        raise DeploymentError("流程缺少 id，无法作为流程键 (the process needs an id)", element=_describe(process))
    limits = ((key, "id", Deployment.__table__.c.process_key), (name, "name", Deployment.__table__.c.name))
    for value, attr, column in limits:
        if value is not None and len(value) > column.type.length:
            raise DeploymentError(f"流程的 {attr} 过长：{len(value)} 个字符，上限 {column.type.length}",
                                  element=key[:80])
    return process


def _compile(expression: str | None, where: str, *, script: bool = False) -> None:
    try:
        (compile_script if script else compile_expression)(expression or "")
    except ExpressionError as exc:
        raise DeploymentError(f"表达式不被允许: {exc.message}", element=where) from None


def _check_timer_literal(expression: str, kind: str, where: str) -> None:
    try:
        value = ast.literal_eval(expression)
    except (ValueError, SyntaxError):
        return  # a real expression: its value is only known when the timer starts
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        if kind == "cycle":
            TimerEventDefinition.parse_iso_recurring_interval(value)
        elif kind == "duration" and value.upper().startswith("P"):
            TimerEventDefinition.parse_iso_duration(value)
        else:
            TimerEventDefinition.get_datetime(value)
    except Exception:
        raise DeploymentError(f"定时器取值无法解析 (unparsable timer): {value!r}", element=where) from None


def _check_specs(parsed: ParsedDiagram, services: ServiceRegistry) -> None:
    """Known service topics, and every expression and script a task spec evaluates compiles.

    Expressions of event definitions other than timers (conditions, message payloads) are compiled by
    :func:`_check_event_expressions`.
    """
    for spec in [parsed.spec, *parsed.subprocess_specs.values()]:
        if getattr(spec, "completion_condition", None):  # ad-hoc sub-process
            _compile(spec.completion_condition, f"{spec.name} completionCondition")
        for task_spec in spec.task_specs.values():
            where = _where(task_spec)
            if isinstance(task_spec, ExternalServiceTask) and services.get(task_spec.topic) is None:
                raise DeploymentError(
                    f"未知的服务任务主题 (unknown service-task topic) '{task_spec.topic}'；"
                    f"已注册: {', '.join(services.topics()) or '无'}", element=where)
            for label, source, script in _task_expressions(task_spec):
                _compile(source, f"{where} {label}" if label else where, script=script)
            timer = timer_definition(task_spec)
            if timer is not None:
                _check_timer_literal(timer.expression, timer.kind, where)
            if isinstance(task_spec, MultiInstanceTask):
                _check_loop_variables(task_spec, where)


def _task_expressions(task_spec: Any) -> Iterator[tuple[str, str | None, bool]]:
    """(label, source, is a script) of every expression SpiffWorkflow evaluates for ``task_spec``."""
    if isinstance(task_spec, ExternalServiceTask):
        for name, expr in task_spec.input_parameters + task_spec.output_parameters:
            yield f"参数 {name}", expr, False
    timer = timer_definition(task_spec)
    if timer is not None:
        yield "", timer.expression, False
    if getattr(task_spec, "script", None):
        yield "", task_spec.script, True
    if isinstance(task_spec, UserTask):
        for attr in ("candidateGroups", "candidateUsers", "assignee", "dueDate"):
            value = (task_spec.extensions or {}).get(attr)
            if value and value.strip().startswith("${"):
                yield attr, camunda_expression(value), False
        for field in getattr(task_spec.form, "fields", None) or []:
            if field.default_value and "${" in field.default_value:
                yield f"表单字段 {field.id} defaultValue", camunda_expression(field.default_value), False
    for cond, _target in getattr(task_spec, "cond_task_specs", []) or []:
        if cond is not None:
            yield "", getattr(cond, "args", [None])[0], False
    if isinstance(task_spec, StandardLoopTask) and task_spec.condition is not None:
        yield "loopCondition", task_spec.condition, False
    if isinstance(task_spec, MultiInstanceTask):
        if task_spec.cardinality is not None:
            yield "loopCardinality", task_spec.cardinality, False
        if task_spec.condition is not None:
            yield "completionCondition", task_spec.condition, False


def _check_loop_variables(task_spec: Any, where: str) -> None:
    """A multi-instance collection or element variable names task data; it is not an expression."""
    refs = (("camunda:collection / loopDataOutputRef", task_spec.data_output),
            ("loopDataInputRef", task_spec.data_input), ("inputDataItem", task_spec.input_item),
            ("camunda:elementVariable / outputDataItem", task_spec.output_item))
    for label, ref in refs:
        name = getattr(ref, "bpmn_id", None)
        if ref is not None and not (isinstance(name, str) and name.isidentifier() and not name.startswith("_")
                                    and not keyword.iskeyword(name)):
            raise DeploymentError(f"多实例的 {label} 必须是变量名（不是表达式，也不以 _ 开头）: {name!r} "
                                  f"(a multi-instance collection names a variable)", element=f"{where} {label}")


def _where(task_spec: Any) -> str:
    name = getattr(task_spec, "bpmn_name", None)
    return f"{task_spec.bpmn_id or task_spec.name}" + (f" ({name})" if name else "")


def _event_definitions(task_spec: Any) -> list[Any]:
    definition = getattr(task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [definition] if definition is not None else []


def _check_event_expressions(parsed: ParsedDiagram) -> None:
    """Message payloads, correlation keys and event conditions run through the script engine: compile them now."""
    for spec in [parsed.spec, *parsed.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            for definition in _event_definitions(task_spec):
                if isinstance(definition, MessageEventDefinition):
                    if getattr(definition, "expression", None):
                        _compile(definition.expression, f"{_where(task_spec)} camunda:expression")
                    for prop in definition.correlation_properties:
                        _compile(prop.retrieval_expression, f"{_where(task_spec)} 关联属性 {prop.name}")
                elif isinstance(definition, ConditionalEventDefinition):
                    _compile(definition.expression, f"{_where(task_spec)} 条件")


def _check_waits_can_end(parsed: ParsedDiagram) -> None:
    """Refuse start events nothing could trigger: a case starts by :meth:`engine.runtime.RuntimeService.start` or
    by a message (``correlate_message`` to a new business key), never by a signal."""
    for task_spec in parsed.spec.task_specs.values():
        if isinstance(task_spec, StartEvent):
            for definition in _event_definitions(task_spec):
                if isinstance(definition, SignalEventDefinition):
                    raise DeploymentError(
                        "暂不支持信号开始事件：案件由立案（runtime.start）或消息启动，没有任何信号会启动它 "
                        "(a signal start event is not supported)", element=_where(task_spec))


def _validation_error(exc: ValidationException) -> DeploymentError:
    """SpiffWorkflow's parse error as a refusal naming the element (its id, else its name)."""
    reason = str(exc.args[0]) if exc.args else type(exc).__name__
    if reason.startswith("RecursionError("):  # its task parser recurses along the flow, one level per element
        reason = "流程中连续相接的元素过多，超出解析深度 (too many elements in one chain)"
    elif reason.startswith("There is no support implemented for this task type"):
        tag = getattr(exc, "tag", "") or "该元素"
        reason = f"暂不支持 {tag} 元素 (this element type is not supported)"
    notes = "；".join(str(n) for n in getattr(exc, "notes", []) if n)
    return DeploymentError(f"无法解析流程 (parse error): {reason}" + (f"（{notes}）" if notes else ""),
                           element=exc.id or exc.name or None)


@contextmanager
def _refusing(step: str, element: str | None = None) -> Iterator[None]:
    """The last line of defence of one deploy step: whatever fails in it becomes a :class:`DeploymentError`.

    The specific checks come first and say exactly what is wrong; this only catches what they did not
    foresee (lxml, SpiffWorkflow), so a designer gets the step and the reason instead of a traceback. The
    refusal names the element SpiffWorkflow reports, else ``element`` (the process, once it is known).
    """
    try:
        yield
    except DeploymentError:
        raise
    except ValidationException as exc:
        error = _validation_error(exc)
        error.element = error.element or element
        raise error from None
    except ExpressionError as exc:
        raise DeploymentError(f"表达式不被允许: {exc.message}", element=exc.element or element) from None
    except RecursionError:
        raise DeploymentError(f"{step}失败：流程图嵌套或连续的元素过多 (too deeply nested)",
                              element=element, step=step) from None
    except Exception as exc:
        _log.info("deploy step %s failed unexpectedly", step, exc_info=True)
        raise DeploymentError(f"{step}失败，流程图无法部署 ({type(exc).__name__}: {exc})",
                              element=element, step=step) from None


def parse_diagram(content: bytes, filename: str | None = None, services: ServiceRegistry | None = None, *,
                  max_bytes: int = MAX_DIAGRAM_BYTES,
                  companions: Sequence[tuple[str | None, bytes]] = ()) -> ParsedDiagram:
    """Validate and parse; raise :class:`DeploymentError` on anything wrong (never another error). Writes nothing.

    ``companions`` are the other files deployed together with this one: a call activity may call a process of
    one of them (by its id, Camunda's ``calledElement``); the called process runs as a SpiffWorkflow subprocess
    of the case and is the one deployed with the caller (Camunda's ``calledElementBinding="deployment"``).
    """
    with _refusing("读取 XML (reading the XML)"):
        root = _safe_parse(content, max_bytes)
    with _refusing("BPMN 模式校验 (schema check)"):
        _check_schema(root, filename)
    with _refusing("查找可执行流程 (finding the process)"):
        _normalise_conditions(root)
        process = _executable_process(root)
        key = process.get("id")
    own = {p.get("id") for p in root.findall("bpmn:process", NS)}
    defining: dict[str, bytes] = {}
    with _refusing("解析流程 (parsing the process)", key):
        parser = QifuParser()
        parser.add_bpmn_xml(root, filename=filename)
        for other_name, other in companions:
            try:
                other_root = _safe_parse(other, max_bytes)
            except DeploymentError as exc:
                exc.message = f"同批部署的 {other_name or '另一个文件'}: {exc.message}"
                raise
            with _refusing(f"读取同批部署的 {other_name or '文件'} (reading a file deployed with it)"):
                ids = {p.get("id") for p in other_root.findall("bpmn:process", NS)}
                if ids & own or ids & set(defining):
                    continue  # a process this file (or an earlier companion) defines itself wins
                _normalise_conditions(other_root)
                parser.add_bpmn_xml(other_root, filename=other_name)
                defining.update(dict.fromkeys(ids, other))
        spec = parser.get_spec(key)
        subprocess_specs = parser.get_subprocess_specs(key)
    used = [defining[k] for k in subprocess_specs if k in defining]
    parsed = ParsedDiagram(key, process.get("name"), spec, subprocess_specs,
                           called_files=list(dict.fromkeys(used)))
    with _refusing("检查任务与表达式 (checking tasks and expressions)", key):
        _check_specs(parsed, services or ServiceRegistry())
        _check_event_expressions(parsed)
        _check_waits_can_end(parsed)
        for cond in root.iterfind(".//bpmn:sequenceFlow", NS):
            expr = cond.find("bpmn:conditionExpression", NS)
            if expr is not None:
                _compile(expr.text, _describe(cond))
    return parsed


EXPRESSION_KINDS = ("condition", "timer:date", "timer:duration", "timer:cycle", "parameter", "script", "attribute",
                    "default", "expression")


def check_expression(kind: str, text: str) -> str | None:
    """Why one diagram expression would be refused at deploy (None: it compiles), judged as deploy judges it.

    ``kind`` says where the text sits, since that decides how it is read: a flow ``condition``, a timer value
    (``timer:date``/``timer:duration``/``timer:cycle``, a literal must parse), a service task ``parameter``
    (text is a string, ``${…}`` an expression), a ``script``, an ``attribute`` such as candidateGroups (only
    ``${…}`` is an expression), a form field's ``default`` value, or a plain ``expression``. This is what the
    in-browser modeler asks while the designer edits; a deploy still validates the whole diagram itself.
    """
    if kind not in EXPRESSION_KINDS:
        raise ValueError(f"未知的表达式种类 {kind!r}")
    try:
        if kind == "script":
            _compile(text, "script", script=True)
        elif kind == "parameter":
            try:
                source = parameter_expression(text)
            except ValueError as exc:
                return str(exc)
            _compile(source, "parameter")
        elif kind in ("attribute", "default"):
            value = text.strip()
            if (kind == "attribute" and value.startswith("${")) or (kind == "default" and "${" in value):
                _compile(camunda_expression(value), kind)
        else:
            source = camunda_expression(text) or ""
            _compile(source, kind)
            if kind.startswith("timer:"):
                _check_timer_literal(source, kind.split(":", 1)[1], kind)
    except DeploymentError as exc:
        return exc.message
    return None


def _unserialisable(parsed: ParsedDiagram) -> str | None:
    """The first task spec that does not serialise on its own (to name it in the refusal)."""
    registry = _serializer.registry
    for spec in [parsed.spec, *parsed.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            try:
                json.dumps(registry.convert(task_spec), ensure_ascii=False)
            except Exception:
                return _where(task_spec)
    return None


def spec_to_json(parsed: ParsedDiagram) -> str:
    """The spec as stored in ``deployment.spec_json``; refused unless it also restores (a case must start)."""
    registry = _serializer.registry
    try:
        text = json.dumps({
            "spec": registry.convert(parsed.spec),
            "subprocess_specs": {k: registry.convert(v) for k, v in parsed.subprocess_specs.items()},
        }, ensure_ascii=False)
        _restore_specs(text)
    except Exception as exc:
        _log.info("spec of %s does not serialise", parsed.process_key, exc_info=True)
        raise DeploymentError(f"流程无法保存：该元素不能序列化 (spec serialisation failed: {type(exc).__name__}: {exc})",
                              element=_unserialisable(parsed) or parsed.process_key,
                              step="序列化 (serialising the spec)") from None
    return text


def content_digest(content: bytes, parsed: ParsedDiagram | None = None) -> str:
    """A version's content hash: of the file, and of the files its call activities call when there are any (a
    new version of a called process in another file is a new version of the caller, which embeds it)."""
    digest = hashlib.sha256(content)
    for called in (parsed.called_files if parsed is not None else []):
        digest.update(b"\0" + hashlib.sha256(called).digest())
    return digest.hexdigest()


def deploy(session: Session, content: bytes, *, filename: str | None = None, actor: str | None = None,
           now: datetime, services: ServiceRegistry | None = None, max_bytes: int = MAX_DIAGRAM_BYTES,
           expect_latest: dict[str, int | None] | None = None,
           companions: Sequence[tuple[str | None, bytes]] = ()) -> DeployResult:
    """Validate ``content`` and store it as the next version of its process, unless identical content is there.

    With ``expect_latest``, the process's newest version must still be the one named there (see
    :meth:`RepositoryService.deploy_many`). ``companions``: see :func:`parse_diagram`.
    """
    parsed = parse_diagram(content, filename, services, max_bytes=max_bytes, companions=companions)
    digest = content_digest(content, parsed)
    if expect_latest is not None:
        newest = session.scalar(select(func.max(Deployment.version))
                                .where(Deployment.process_key == parsed.process_key))
        if parsed.process_key not in expect_latest or newest != expect_latest[parsed.process_key]:
            raise ConflictError(f"流程 {parsed.process_key} 的最新版本已变为 {newest or '无'}（预览时为 "
                                f"{expect_latest.get(parsed.process_key) or '无'}），请重新上传并核对改动",
                                element=parsed.process_key)
    existing = session.scalar(
        select(Deployment).where(Deployment.process_key == parsed.process_key, Deployment.content_hash == digest)
        .order_by(Deployment.version.desc()).limit(1))
    if existing is not None:
        return DeployResult(existing, created=False)
    latest = session.scalar(select(func.max(Deployment.version)).where(Deployment.process_key == parsed.process_key))
    deployment = Deployment(
        process_key=parsed.process_key, version=(latest or 0) + 1, name=parsed.name, content_hash=digest,
        filename=filename, xml=content.decode("utf-8"), spec_json=spec_to_json(parsed), deployed_at=now,
        deployed_by=actor)
    session.add(deployment)
    session.flush()
    return DeployResult(deployment, created=True)


@dataclass(frozen=True)
class DeploymentRef:
    """What starting a case needs to know of a deployment (the large columns stay in the table)."""

    id: int
    process_key: str
    version: int
    content_hash: str


_dep = Deployment.__table__
_inst = Instance.__table__
_REF = select(_dep.c.id, _dep.c.process_key, _dep.c.version, _dep.c.content_hash)
_REF_BY_ID = Prepared(_REF.where(_dep.c.id == bindparam("id")))
_REF_NEWEST = Prepared(_REF.where(_dep.c.process_key == bindparam("key")).order_by(_dep.c.version.desc())
                       .limit(bindparam("one")))


def find_deployment(session: Session, *, process_key: str | None = None,
                    deployment_id: int | None = None) -> DeploymentRef | None:
    """A deployment by id, or the newest version of ``process_key``; None if there is none."""
    if deployment_id is not None:
        row = _REF_BY_ID.one(session, {"id": deployment_id})
    else:
        row = _REF_NEWEST.one(session, {"key": process_key, "one": 1})
    return DeploymentRef(**row) if row is not None else None


# --- the in-memory spec cache: a version's spec is restored from JSON once per process -----------------
_spec_cache: dict[tuple[int, str], tuple[Any, dict[str, Any]]] = {}


def _restore_specs(spec_json: str) -> tuple[Any, dict[str, Any]]:
    data = json.loads(spec_json)
    registry = _serializer.registry
    spec = registry.restore(data["spec"])
    subs = {k: registry.restore(v) for k, v in data["subprocess_specs"].items()}
    return spec, subs


def load_specs(deployment: Deployment) -> tuple[Any, dict[str, Any]]:
    key = (deployment.id, deployment.content_hash)
    if key not in _spec_cache:
        _spec_cache[key] = _restore_specs(deployment.spec_json)
    return _spec_cache[key]


def specs_for(session: Session, deployment_id: int, content_hash: str) -> tuple[Any, dict[str, Any]]:
    """The parsed spec of a deployment known by id and content hash; read from the table only once.

    The key includes the hash, not just the id: a database recreated under the same URL (tests, a restored
    backup) may give the same id to another diagram.
    """
    key = (deployment_id, content_hash)
    if key not in _spec_cache:
        spec_json = session.connection().scalar(
            select(Deployment.__table__.c.spec_json).where(Deployment.__table__.c.id == deployment_id))
        _spec_cache[key] = _restore_specs(spec_json)
    return _spec_cache[key]


# --- the service -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessSummary:
    """A process key with its newest version."""

    process_key: str
    name: str | None
    version: int
    deployment_id: int


@dataclass(frozen=True)
class ProcessOverview:
    """A process key on the process pages: its newest version and the cases of all its versions."""

    process_key: str
    name: str | None
    version: int
    deployment_id: int
    versions: int
    deployed_at: datetime
    deployed_by: str | None
    running: int
    finished: int


@dataclass(frozen=True)
class VersionInfo:
    """One deployed version: who deployed it when, its content hash, its running and finished cases."""

    id: int
    process_key: str
    version: int
    name: str | None
    content_hash: str
    filename: str | None
    deployed_at: datetime
    deployed_by: str | None
    running: int
    finished: int


@dataclass
class Preview:
    """One uploaded file before anything is stored: its refusal, or what deploying it would change."""

    filename: str | None
    content_hash: str
    process_key: str | None
    name: str | None
    error: DeploymentError | None = None
    summary: ChangeSummary | None = None
    base_version: int | None = None  # the newest version now (None: a new process key)
    same_as_version: int | None = None  # identical content is already this version: no new version

    @property
    def ok(self) -> bool:
        return self.error is None


class RepositoryService:
    """Deployments (Camunda's RepositoryService): validate and store diagrams, list versions, hand out specs."""

    def __init__(self, db: Database, services: ServiceRegistry, *, max_bytes: int = MAX_DIAGRAM_BYTES,
                 clock: Any = None) -> None:
        self.db = db
        self.services = services
        self.max_bytes = max_bytes
        self.clock = clock

    def validate(self, content: bytes, filename: str | None = None) -> ParsedDiagram:
        """Everything a deploy checks, storing nothing."""
        return parse_diagram(content, filename, self.services, max_bytes=self.max_bytes)

    def deploy(self, content: bytes, *, filename: str | None = None, actor: str | None = None) -> DeployResult:
        """Validate and store one diagram as the next version of its process (same content: no new version)."""
        return self.deploy_many([(filename, content)], actor=actor)[0]

    def deploy_many(self, files: list[tuple[str | None, bytes]], *, actor: str | None = None,
                    expect_latest: dict[str, int | None] | None = None) -> list[DeployResult]:
        """Validate and store several diagrams in one transaction: all of them, or none (the refusal names
        the file).

        ``expect_latest`` (process key → newest version when the designer saw the changes, None for a new
        key): if another deploy came in between, nothing is stored and :class:`ConflictError` says so, so a
        designer never confirms a summary of changes against a version that is no longer the newest.
        """
        results = []
        with self.db.write() as session:
            for n, (filename, content) in enumerate(files):
                try:
                    result = deploy(session, content, filename=filename, actor=actor, now=self.clock.now(),
                                    services=self.services, max_bytes=self.max_bytes,
                                    expect_latest=expect_latest, companions=files[:n] + files[n + 1:])
                except DeploymentError as exc:
                    if filename:
                        exc.message = f"{filename}: {exc.message}"
                    raise
                session.expunge(result.deployment)
                results.append(result)
        return results

    def processes(self) -> list[ProcessSummary]:
        """Every process key with its newest version, by key."""
        newest = (select(_dep.c.process_key, func.max(_dep.c.version).label("version"))
                  .group_by(_dep.c.process_key).subquery())
        query = (select(_dep.c.process_key, _dep.c.name, _dep.c.version, _dep.c.id)
                 .join(newest, (newest.c.process_key == _dep.c.process_key) & (newest.c.version == _dep.c.version))
                 .order_by(_dep.c.process_key))
        with self.db.read() as session:
            return [ProcessSummary(*row) for row in session.execute(query)]

    def overview(self) -> list[ProcessOverview]:
        """Every process key: its newest version, how many versions, running and finished cases (grouped in SQL)."""
        per_key = (select(_dep.c.process_key, func.max(_dep.c.version).label("newest"),
                          func.count().label("versions"))
                   .group_by(_dep.c.process_key).subquery())
        cases = (select(_dep.c.process_key, func.sum(case((_inst.c.status == "running", 1), else_=0)).label("running"),
                        func.sum(case((_inst.c.status != "running", 1), else_=0)).label("finished"))
                 .join_from(_inst, _dep, _dep.c.id == _inst.c.deployment_id)
                 .group_by(_dep.c.process_key).subquery())
        query = (select(per_key.c.process_key, _dep.c.name, per_key.c.newest, _dep.c.id, per_key.c.versions,
                        _dep.c.deployed_at, _dep.c.deployed_by, cases.c.running, cases.c.finished)
                 .join(_dep, (_dep.c.process_key == per_key.c.process_key) & (_dep.c.version == per_key.c.newest))
                 .outerjoin(cases, cases.c.process_key == per_key.c.process_key)
                 .order_by(per_key.c.process_key))
        with self.db.read() as session:
            return [ProcessOverview(r[0], r[1], r[2], r[3], r[4], r[5], r[6], int(r[7] or 0), int(r[8] or 0))
                    for r in session.execute(query)]

    def versions(self, process_key: str) -> list[VersionInfo]:
        """The versions of one process key, newest first, each with its running and finished cases.

        The counts are one ``GROUP BY instance.deployment_id`` over the key's deployments (index on
        ``instance.deployment_id``), joined to the deployment rows; the XML and the spec are not read.
        """
        ids = select(_dep.c.id).where(_dep.c.process_key == process_key)
        counts = (select(_inst.c.deployment_id,
                         func.sum(case((_inst.c.status == "running", 1), else_=0)).label("running"),
                         func.sum(case((_inst.c.status != "running", 1), else_=0)).label("finished"))
                  .where(_inst.c.deployment_id.in_(ids)).group_by(_inst.c.deployment_id).subquery())
        query = (select(_dep.c.id, _dep.c.process_key, _dep.c.version, _dep.c.name, _dep.c.content_hash,
                        _dep.c.filename, _dep.c.deployed_at, _dep.c.deployed_by, counts.c.running, counts.c.finished)
                 .outerjoin(counts, counts.c.deployment_id == _dep.c.id)
                 .where(_dep.c.process_key == process_key).order_by(_dep.c.version.desc()))
        with self.db.read() as session:
            return [VersionInfo(*r[:8], int(r[8] or 0), int(r[9] or 0)) for r in session.execute(query)]

    def version(self, process_key: str, version: int) -> VersionInfo | None:
        return next((v for v in self.versions(process_key) if v.version == version), None)

    def preview(self, files: list[tuple[str | None, bytes]]) -> list[Preview]:
        """What deploying ``files`` together would do, storing nothing: per file the refusal (the same
        validation as :meth:`deploy`), or the version it would become and its changes against the newest one."""
        out: list[Preview] = []
        seen: dict[str, str | None] = {}
        with self.db.read() as session:
            for n, (filename, content) in enumerate(files):
                digest = content_digest(content)
                try:
                    parsed = parse_diagram(content, filename, self.services, max_bytes=self.max_bytes,
                                           companions=files[:n] + files[n + 1:])
                except DeploymentError as exc:
                    out.append(Preview(filename, digest, None, None, error=exc))
                    continue
                digest = content_digest(content, parsed)
                key = parsed.process_key
                if key in seen:
                    error = DeploymentError(f"流程 {key} 在 {seen[key] or '另一个文件'} 中已出现：一次只能部署每个流程的一个版本",
                                            element=key)
                    out.append(Preview(filename, digest, key, parsed.name, error=error))
                    continue
                seen[key] = filename
                newest = session.execute(select(_dep.c.id, _dep.c.version).where(_dep.c.process_key == key)
                                         .order_by(_dep.c.version.desc()).limit(1)).one_or_none()
                same = session.scalar(select(_dep.c.version).where(_dep.c.process_key == key,
                                                                   _dep.c.content_hash == digest)
                                      .order_by(_dep.c.version.desc()).limit(1))
                base_xml = (session.scalar(select(_dep.c.xml).where(_dep.c.id == newest.id))
                            if newest is not None else None)
                summary = summarise(content, base_xml, newest.version if newest is not None else None)
                out.append(Preview(filename, digest, key, parsed.name, summary=summary,
                                   base_version=newest.version if newest is not None else None,
                                   same_as_version=same))
        return out

    def deployment(self, deployment_id: int) -> DeploymentRef | None:
        with self.db.read() as session:
            return find_deployment(session, deployment_id=deployment_id)

    def latest(self, process_key: str) -> DeploymentRef | None:
        with self.db.read() as session:
            return find_deployment(session, process_key=process_key)

    def xml(self, deployment_id: int) -> str | None:
        """The BPMN XML of one version, as deployed."""
        with self.db.read() as session:
            return session.scalar(select(_dep.c.xml).where(_dep.c.id == deployment_id))

    def specs(self, deployment_id: int) -> tuple[Any, dict[str, Any]]:
        """The parsed spec of one version (and its subprocess specs), from the in-memory cache."""
        with self.db.read() as session:
            ref = find_deployment(session, deployment_id=deployment_id)
            if ref is None:
                raise NotFoundError(f"流程版本不存在: {deployment_id}")
            return specs_for(session, ref.id, ref.content_hash)
