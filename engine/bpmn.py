"""What a diagram says: our additions to SpiffWorkflow's Camunda parser, specs and serializer.

SpiffWorkflow's Camunda parser knows user tasks with ``camunda:formData``; it does not know Camunda
Modeler's *External* service tasks, candidate groups, or timer values written the Camunda way. This module
adds, and nothing else:

- :class:`ExternalServiceTask` — ``<serviceTask camunda:type="external" camunda:topic="transfer">`` with
  ``camunda:inputOutput`` parameters; the handler registered for the topic runs when the task runs.
- user-task parsing that reads ``camunda:formData`` without a ``formKey`` and keeps ``candidateGroups``,
  ``assignee`` and ``dueDate`` in the spec's extensions.
- timer event definitions whose due instant is computed *once* (through the engine's clock and working-day
  calendar) and which fire only when the job executor says so — see :mod:`engine.jobs`.
- :class:`QifuBoundaryEventJoin` — branches a non-interrupting ``R3/P1D`` cycle started outlive the activity.
- :class:`QifuParallelGateway` — a parallel join inside a loop waits for this turn's branches.
- :func:`camunda_expression` — ``P3D`` / ``R3/P1D`` / ISO dates as literals, ``${…}`` as Python expressions.
- message events, send and receive tasks all with Camunda's ``MessageEventDefinition`` (SpiffWorkflow gives
  send/receive tasks the plain BPMN one, which the Camunda serializer cannot write), the message looked up
  by id without building an XPath from diagram text.
- :class:`QifuEventBasedGateway` / :class:`QifuGatewayCatchEvent` — an event-based gateway whose timers are
  timer rows like any other (the first event to arrive cancels the others).
- refusals, as parse errors on the element: business-rule tasks (no DMN in Qifu), send tasks written as
  Camunda service implementations (their handler would silently never run), form fields the task
  forms could not fill in (:func:`engine.forms.check_fields`), event-based gateways that start the process,
  are parallel or lead to a receive task, and event definitions SpiffWorkflow's parser would drop for that
  kind of event (a signal end event, link and compensation events).

The specs call back into the workflow's script engine (``run_service`` / ``timer_due``), which
:mod:`engine.runtime` provides per step: specs stay free of database and clock concerns.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NoReturn, overload

from lxml import etree
from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import EventBasedGatewayParser, ReceiveTaskParser, SendTaskParser
from SpiffWorkflow.bpmn.parser.task_parsers import GatewayParser
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.util import first
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.default.task_spec import (
    BpmnTaskSpecConverter,
    EventConverter,
    EventJoinConverter,
    ParallelGatewayConverter,
)
from SpiffWorkflow.bpmn.serializer.helpers.spec import EventDefinitionConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.control import BoundaryEventJoin
from SpiffWorkflow.bpmn.specs.defaults import (
    EventBasedGateway,
    IntermediateCatchEvent,
    ParallelGateway,
    ReceiveTask,
    SendTask,
    ServiceTask,
)
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
)
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.event_parsers import (
    CamundaBoundaryEventParser,
    CamundaEndEventParser,
    CamundaIntermediateCatchEventParser,
    CamundaIntermediateThrowEventParser,
    CamundaStartEventParser,
)
from SpiffWorkflow.camunda.parser.task_spec import CAMUNDA_MODEL_NS, BusinessRuleTaskParser, UserTaskParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.camunda.serializer.event_definition import MessageEventDefinitionConverter
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.camunda.specs.user_task import EnumFormField, Form, FormField, UserTask
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.util.task import TaskState

from .forms import check_fields, fields_of_form

if TYPE_CHECKING:  # to mypy the parser mixins below extend SpiffWorkflow's event parser (untyped, so Any)
    from SpiffWorkflow.bpmn.parser.event_parsers import EventDefinitionParser as _EventParser
else:
    _EventParser = object

CAMUNDA = "{" + CAMUNDA_MODEL_NS + "}"

_ISO_DURATION = re.compile(r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
                           r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$", re.I)
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$")
_ISO_CYCLE = re.compile(r"^R\d*/", re.I)
_CAMUNDA_EXPR = re.compile(r"^\$\{(.*)\}$", re.S)
# Looks like an attempt at an ISO 8601 value: kept as a literal, so a typo is refused as unparsable
# instead of being read as a variable name.
_ISO_LIKE = re.compile(r"^(R\d*/|PT?\d|\d{4}-\d)", re.I)


@overload
def camunda_expression(text: str) -> str: ...
@overload
def camunda_expression(text: None) -> None: ...
def camunda_expression(text: str | None) -> str | None:
    """Turn a value written the Camunda way into a Python expression for the restricted engine.

    ``${expr}`` → ``expr``; an ISO 8601 duration, cycle or date-time → that text as a string literal;
    anything else is already a Python expression (SpiffWorkflow's own convention, e.g. ``"P3D"``).
    """
    if text is None:
        return None
    value = text.strip()
    match = _CAMUNDA_EXPR.match(value)
    if match:
        return match.group(1).strip()
    if _ISO_DURATION.match(value) or _ISO_DATETIME.match(value) or _ISO_CYCLE.match(value) \
            or _ISO_LIKE.match(value):
        return repr(value)
    return value


def parameter_expression(text: str | None) -> str:
    """A ``camunda:inputParameter``/``outputParameter`` value: ``${expr}`` is an expression, else a string."""
    value = (text or "").strip()
    match = _CAMUNDA_EXPR.match(value)
    if match:
        return match.group(1).strip()
    if "${" in value:
        raise ValueError(f"不支持混合文本表达式 (composite expressions are not supported): {value}")
    return repr(value)


# --- external service tasks -------------------------------------------------------------------------
class ExternalServiceTask(ServiceTask):
    """A Camunda *External* service task; ``topic`` names the handler."""

    def __init__(self, wf_spec, bpmn_id, topic: str, input_parameters=None, output_parameters=None, **kwargs):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.topic = topic
        self.input_parameters: list[list[str]] = input_parameters or []
        self.output_parameters: list[list[str]] = output_parameters or []

    def _run_hook(self, my_task):
        my_task.workflow.script_engine.run_service(my_task, self)
        return True


class ExternalServiceTaskParser(TaskParser):
    def create_task(self):
        topic = self.node.get(f"{CAMUNDA}topic")
        kind = self.node.get(f"{CAMUNDA}type")
        if kind != "external" or not topic:
            self.raise_validation_exception(
                "服务任务必须是 Camunda 外部任务 (camunda:type=\"external\" 且设置 camunda:topic)"
            )
        inputs: list[list[Any]] = []
        outputs: list[list[Any]] = []
        for tag, target in (("inputParameter", inputs), ("outputParameter", outputs)):
            for node in self.xpath(f".//camunda:inputOutput/camunda:{tag}"):
                if len(node):
                    self.raise_validation_exception(f"参数 {node.get('name')} 只支持文本或 ${{…}} 表达式")
                try:
                    target.append([node.get("name"), parameter_expression(node.text)])
                except ValueError as exc:
                    self.raise_validation_exception(str(exc))
        return self.spec_class(self.spec, self.bpmn_id, topic=topic, input_parameters=inputs,
                               output_parameters=outputs, **self.bpmn_attributes)


class ExternalServiceTaskConverter(BpmnTaskSpecConverter):
    def to_dict(self, spec):
        dct = self.get_default_attributes(spec)
        dct.update(topic=spec.topic, input_parameters=spec.input_parameters,
                   output_parameters=spec.output_parameters)
        return dct


# --- user tasks ---------------------------------------------------------------------------------------
class QifuUserTaskParser(UserTaskParser):
    """Reads ``camunda:formData`` with or without a formKey, and keeps assignment attributes."""

    def parse_extensions(self, node=None):
        ext = super().parse_extensions(node)
        for attr in ("candidateGroups", "candidateUsers", "assignee", "dueDate", "formKey"):
            value = self.node.get(f"{CAMUNDA}{attr}")
            if value:
                ext[attr] = value
        return ext

    def get_form(self):
        form = Form()
        form.key = self.node.get(f"{CAMUNDA}formKey") or ""
        for xml_field in self.xpath(".//camunda:formData/camunda:formField"):
            field = EnumFormField() if xml_field.get("type") == "enum" else FormField()
            field.id = xml_field.get("id")
            field.type = xml_field.get("type") or "string"
            field.label = xml_field.get("label")
            field.default_value = xml_field.get("defaultValue")
            for child in xml_field:
                if child.tag == f"{CAMUNDA}properties":
                    for p in child:
                        field.add_property(p.get("id"), p.get("value"))
                elif child.tag == f"{CAMUNDA}validation":
                    for v in child:
                        field.add_validation(v.get("name"), v.get("config"))
                elif child.tag == f"{CAMUNDA}value" and isinstance(field, EnumFormField):
                    field.add_option(child.get("id"), child.get("name"))
            form.add_field(field)
        try:
            check_fields(fields_of_form(form))
        except ValueError as exc:
            self.raise_validation_exception(f"{exc}；该任务将永远无法办理 (the task could never be completed)")
        return form


# --- messages, send and receive tasks, business rules -------------------------------------------------
class QifuMessageEventDefinition(MessageEventDefinition):
    """Camunda's message event; thrown without ``camunda:expression`` it carries no payload.

    SpiffWorkflow's Camunda definition evaluates the expression unconditionally, so a plain send task
    (Camunda Modeler writes no expression) failed at run time on ``evaluate(None)``.
    """

    def throw(self, my_task):
        if self.expression:
            return super().throw(my_task)
        payload = {"payload": None, "result_var": self.result_var}
        my_task.workflow.top_workflow.catch(BpmnEvent(self, payload=payload))
        return None

    def update_task_data(self, my_task):
        """A message delivered from outside (:meth:`engine.runtime.RuntimeService.correlate_message`) sets its
        variables in the case, as Camunda's correlation with variables does, and — as SpiffWorkflow stores a
        message's payload — a catching event also keeps them as the value of its ``camunda:resultVariable`` (else
        of ``<element>_Response``); a receive task only sets them (SpiffWorkflow's plain message definition)."""
        event_data = my_task.internal_data.get(self.name) or {}
        if "qifu_variables" not in event_data:
            return super().update_task_data(my_task)
        my_task.data.update(event_data["qifu_variables"])
        if not isinstance(my_task.task_spec, ReceiveTask):
            my_task.data[self.result_var or event_data["result_var"]] = dict(event_data["qifu_variables"])
        return None


class _EventParserMixin(_EventParser):
    """Event definitions whose references are checked, so a broken reference is a parse error on the element.

    Messages the Camunda way, looked up by id in the document: SpiffWorkflow's Camunda parser builds an
    XPath from ``messageRef`` (a quote in it breaks the query) and asserts exactly one match. A message
    event needs a named message: catching and throwing events are matched by that name. For an unknown
    ``errorRef``/``signalRef``/``escalationRef`` SpiffWorkflow 3.2 fails with a TypeError in its own error
    reporting; for a boundary event without a definition it supports it raises NotImplementedError.
    """

    if TYPE_CHECKING:  # SpiffWorkflow's NodeParser method, declared here for what it is: it always raises
        def raise_validation_exception(self, message: str) -> NoReturn: ...

    def parse_message_event(self, message_event):
        ref = message_event.get("messageRef")
        if not ref:
            self.raise_validation_exception("消息事件必须通过 messageRef 引用一个 bpmn:message (no messageRef)")
        message = next((m for m in self.doc_xpath(".//bpmn:message") if m.get("id") == ref), None)
        if message is None:
            self.raise_validation_exception(f"messageRef 引用的消息 {ref} 不存在 (no bpmn:message with this id)")
        name = (message.get("name") or "").strip()
        if not name:
            self.raise_validation_exception(f"消息 {ref} 没有名称 (a bpmn:message needs a name)")
        payload = self.attribute("expression", "camunda", message_event)
        result_var = self.attribute("resultVariable", "camunda", message_event)
        return QifuMessageEventDefinition(name, self.get_message_correlations(ref), payload, result_var)

    def parse_error_event(self, error_event):
        ref = error_event.get("errorRef")
        if ref and ref not in self.process_parser.parser.errors:
            self.raise_validation_exception(f"errorRef 引用的错误 {ref} 不存在 (no bpmn:error with this id)")
        return super().parse_error_event(error_event)

    def parse_signal_event(self, signal_event):
        ref = signal_event.get("signalRef")
        if ref and ref not in self.process_parser.parser.signals:
            self.raise_validation_exception(f"signalRef 引用的信号 {ref} 不存在 (no bpmn:signal with this id)")
        return super().parse_signal_event(signal_event)

    def parse_escalation_event(self, escalation_event):
        ref = escalation_event.get("escalationRef")
        if ref and ref not in self.process_parser.parser.escalations:
            self.raise_validation_exception(
                f"escalationRef 引用的升级 {ref} 不存在 (no bpmn:escalation with this id)")
        return super().parse_escalation_event(escalation_event)

    def create_task(self):
        try:
            task = super().create_task()
        except NotImplementedError:
            self.raise_validation_exception(
                "该事件没有受支持的事件定义（定时器、消息、信号、错误、升级、条件）(unsupported event definition)")
        if isinstance(getattr(task, "event_definition", None), NoneEventDefinition):
            ignored = [etree.QName(child).localname for child in self.node
                       if etree.QName(child).localname.endswith("EventDefinition")]
            if ignored:  # SpiffWorkflow's parser for this kind of event does not read it: it would do nothing
                self.raise_validation_exception(
                    f"此类事件不支持 {ignored[0]}，SpiffWorkflow 会忽略它，事件将什么也不做 "
                    f"(this event cannot have a {ignored[0]})")
        return task


_SERVICE_IMPLEMENTATIONS = ("type", "topic", "class", "delegateExpression")


class QifuSendTaskParser(_EventParserMixin, SendTaskParser):
    """A send task throws its message. ``camunda:expression`` is the message payload when there is a message
    (SpiffWorkflow's reading); without one it, like the other attributes here, is a Camunda implementation."""

    def create_task(self):
        used = [a for a in _SERVICE_IMPLEMENTATIONS if self.node.get(f"{CAMUNDA}{a}") is not None]
        has_message = self.node.get("messageRef") is not None or bool(self.xpath(".//bpmn:messageEventDefinition"))
        if not has_message and self.node.get(f"{CAMUNDA}expression") is not None:
            used.append("expression")
        if used:
            self.raise_validation_exception(
                f"发送任务不支持 camunda:{used[0]} 实现方式，请改用服务任务 (serviceTask camunda:type=\"external\")")
        return super().create_task()


class QifuReceiveTaskParser(_EventParserMixin, ReceiveTaskParser):
    pass


class QifuBusinessRuleTaskParser(BusinessRuleTaskParser):
    """Business-rule tasks are refused: Qifu deploys BPMN only, there is no DMN decision to evaluate."""

    @staticmethod
    def get_decision_ref(node):
        # SpiffWorkflow reads this while collecting dependencies, before any task is parsed; a missing
        # attribute must reach create_task (a parse error on the element), not raise KeyError there.
        return node.get(f"{CAMUNDA}decisionRef")

    def create_task(self):
        self.raise_validation_exception(
            "暂不支持业务规则任务（DMN 决策表），请改用服务任务 (serviceTask camunda:type=\"external\") "
            "或排他网关 (business-rule tasks are not supported)")


# --- timers ---------------------------------------------------------------------------------------------
class _EngineTimer:
    """Mixin: the due instant comes from the engine once; firing is decided by the job executor.

    Internal task data: ``event_value`` (due, ISO), ``qifu_provisional``, ``qifu_evaluated_at`` (the clock
    reading the due was computed from, so a calendar correction can recompute it), and ``event_fired``
    which only :mod:`engine.jobs` sets.
    """

    kind = "date"

    def has_fired(self, my_task):
        if my_task._get_internal_data("event_value") is None:
            my_task.workflow.script_engine.timer_due(my_task, self)
        return my_task._get_internal_data("event_fired", False)


class QifuTimeDateEventDefinition(_EngineTimer, TimeDateEventDefinition):
    kind = "date"


class QifuDurationTimerEventDefinition(_EngineTimer, DurationTimerEventDefinition):
    kind = "duration"


class QifuCycleTimerEventDefinition(CycleTimerEventDefinition):
    """``R3/P1D``-style cycles: each occurrence is a timer row; the executor sets ``qifu_cycle_fire``."""

    kind = "cycle"

    def cycle_complete(self, my_task):
        event_value = my_task._get_internal_data("event_value")
        if event_value is None:
            my_task.workflow.script_engine.timer_due(my_task, self)
            event_value = my_task._get_internal_data("event_value")
        if not my_task.internal_data.pop("qifu_cycle_fire", False):
            return False
        event_value = dict(event_value)
        event_value["cycles"] -= 1
        event_value["occurrence"] = event_value.get("occurrence", 1) + 1
        if event_value["cycles"] != 0:
            my_task.workflow.script_engine.next_cycle(my_task, self, event_value)  # may spend missed ones
        if event_value["cycles"] == 0:
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True
        return True

    def update_task(self, my_task):
        if self.cycle_complete(my_task):
            for output in my_task.task_spec.outputs:
                child = my_task._add_child(output, TaskState.FUTURE)
                child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
                child.task_spec._update(child)


class QifuBoundaryEventJoin(BoundaryEventJoin):
    """The join after an activity with boundary events, keeping what a non-interrupting cycle started.

    SpiffWorkflow hangs each branch a cycle timer starts under the cycle's (still waiting) event task, so
    when the activity finishes and the join cancels the waiting cycle, ``Task.cancel`` would drop those
    branches too — a reminder task created by an earlier firing would vanish. A non-interrupting branch is
    independent of the activity (BPMN): here the cycle stops (no further occurrences) and its branches run on.
    """

    def _check_threshold_structured(self, my_task):
        finished, cancel = super()._check_threshold_structured(my_task)
        if finished:
            for task in [t for t in cancel if self._cycle_with_branches(t)]:
                cancel.remove(task)
                task._set_state(TaskState.CANCELLED)  # unlike task.cancel(): the children stay
                task.workflow.top_workflow.event_manager.remove_task(task)
                task.internal_data.pop("event_value", None)
        return finished, cancel

    def _cycle_with_branches(self, task) -> bool:
        return (task.state == TaskState.WAITING and not getattr(task.task_spec, "cancel_activity", True)
                and isinstance(timer_definition(task.task_spec), QifuCycleTimerEventDefinition)
                and any(child.task_spec is not self for child in task.children))


class QifuParallelGateway(ParallelGateway):
    """A parallel join that counts only the arrivals of the current turn of a loop.

    SpiffWorkflow 3.2 decides whether a parallel join may fire by looking at every task of the join's spec
    in the tree. When a case loops back through the join, the join tasks cancelled in an *earlier* turn
    (the branches that arrived first then) still count as arrived, so in the next turn the join fires after
    the first branch. Here a finished join task counts only if it finished after the join last fired on
    this task's own path (the newest completed join task among its ancestors).

    A join that also merges the loop's way back (``start → join ← loop``) is fired by SpiffWorkflow because
    an input met while walking up from the join's next-turn task counts as arrived; the walk passes the
    tasks of every earlier turn, up to the root. Here the input specs above a join task are listed once,
    nearest first, on the join task when it fires (``qifu_inputs_above``), and the walk of the next turn
    stops at that list: the answer is SpiffWorkflow's, it does not depend on the tasks
    :mod:`engine.compaction` dropped from the saved tree (without the list such a loop stopped silently
    once the first turn's tasks were dropped), and the walk no longer grows with the age of the case.
    """

    def _inputs_above(self, my_task) -> list[str]:
        names = {spec.name for spec in self.inputs}
        found: list[str] = []
        node = my_task.parent
        while node is not None:
            if node.task_spec is self and node.state == TaskState.COMPLETED:
                listed = node.internal_data.get("qifu_inputs_above")
                if listed is not None:
                    found.extend(n for n in listed if n not in found)
                    break
            if node.task_spec.name in names and node.task_spec.name not in found:
                found.append(node.task_spec.name)
            node = node.parent
        return found

    def _check_threshold_unstructured(self, my_task):
        tasks = my_task.workflow.get_tasks(spec_name=self.name)
        fired_before = [t.last_state_change for t in tasks
                        if t.state == TaskState.COMPLETED and my_task.is_descendant_of(t)]
        cutoff = max(fired_before, default=None)
        waiting_inputs = set(self.inputs)
        above: list[str] | None = None

        def remove_ancestor(task):
            nonlocal above
            while task is not None and task is not my_task:
                if task.task_spec in waiting_inputs:
                    waiting_inputs.remove(task.task_spec)
                    return
                task = task.parent
            if above is None:
                above = self._inputs_above(my_task)
            for name in above:
                spec = my_task.workflow.spec.task_specs.get(name)
                if spec in waiting_inputs:
                    waiting_inputs.remove(spec)
                    return

        for task in tasks:
            if task.is_descendant_of(my_task):
                remove_ancestor(task)  # first turn: a branch reached only after this join fires
            elif my_task.is_descendant_of(task):
                continue  # this join's own earlier turns
            elif (cutoff is not None and task.has_state(TaskState.FINISHED_MASK)
                  and task.last_state_change <= cutoff):
                continue  # an arrival of an earlier turn
            elif task.parent.state == TaskState.COMPLETED and task.parent.task_spec in waiting_inputs:
                waiting_inputs.remove(task.parent.task_spec)
        if waiting_inputs:
            return False
        my_task.internal_data["qifu_inputs_above"] = above if above is not None else self._inputs_above(my_task)
        return True


# --- event-based gateways ---------------------------------------------------------------------------------
class QifuEventBasedGateway(EventBasedGateway):
    """An event-based gateway whose events stay on the catch events after it.

    SpiffWorkflow moves the events of the following catch events into the gateway's own
    ``MultipleEventDefinition``, so a timer there had no task of its own and no timer row: it never fired.
    Here the gateway passes at once to all of its catch events (:class:`QifuGatewayCatchEvent`), each
    waits as any catch event does (a timer has its row and fires exactly once), and the first that fires
    cancels the others (their timer rows become ``cancelled`` in the same step): the gateway's choice.
    """

    def connect(self, child):
        TaskSpec.connect(self, child)

    def _update_hook(self, my_task):
        return TaskSpec._update_hook(self, my_task)  # it waits for nothing itself

    def _run_hook(self, my_task):
        my_task._sync_children(self.outputs, TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True


class QifuGatewayCatchEvent(IntermediateCatchEvent):
    """A catch event after an event-based gateway: when its event arrives the gateway's other events stop."""

    def _update(self, my_task):
        if not my_task.has_state(TaskState.FINISHED_MASK):  # refresh_timers holds a list made before the cancel
            super()._update(my_task)

    def _on_ready_hook(self, my_task):
        super()._on_ready_hook(my_task)
        parent = my_task.parent
        if parent is not None and isinstance(parent.task_spec, QifuEventBasedGateway):
            for sibling in list(parent.children):
                if sibling is not my_task and not sibling.has_state(TaskState.FINISHED_MASK):
                    sibling.cancel()


class QifuEventBasedGatewayParser(EventBasedGatewayParser):
    def create_task(self):
        if (self.node.get("instantiate") or "false").lower() == "true":
            self.raise_validation_exception(
                "暂不支持用于启动流程的事件网关 (instantiate=\"true\")，请改用消息开始事件 "
                "(an event-based gateway that starts the process is not supported)")
        if (self.node.get("eventGatewayType") or "Exclusive") != "Exclusive":
            self.raise_validation_exception(
                "暂不支持并行事件网关 (eventGatewayType=\"Parallel\") (parallel event-based gateways are not supported)")
        return super().create_task()


def _event_gateway_outputs(spec: Any) -> None:
    """Every flow out of an event-based gateway must reach an intermediate catch event (BPMN 10.6.6)."""
    for task_spec in list(spec.task_specs.values()):
        if isinstance(task_spec, QifuEventBasedGateway):
            for output in task_spec.outputs:
                if type(output) not in (IntermediateCatchEvent, QifuGatewayCatchEvent):
                    raise ValidationException(
                        f"事件网关之后只能是中间捕获事件（定时器、消息、信号、条件），{output.bpmn_id} 不是；"
                        "暂不支持接收任务 (an event-based gateway must lead to intermediate catch events)",
                        node=None, file_name=None, id=output.bpmn_id or task_spec.bpmn_id)
                output.__class__ = QifuGatewayCatchEvent  # same state; see QifuGatewayCatchEvent


class _TimerParserMixin(_EventParser):
    def parse_timer_event(self, event):
        description = self.get_event_description(event)
        name = self.node.get("name", self.node.get("id"))
        for tag, cls in (("timeDate", QifuTimeDateEventDefinition),
                         ("timeDuration", QifuDurationTimerEventDefinition),
                         ("timeCycle", QifuCycleTimerEventDefinition)):
            node = first(self.xpath(f".//bpmn:{tag}"))
            if node is not None:
                if not (node.text or "").strip():
                    raise ValidationException(f"定时器 {tag} 没有取值", node=self.node, file_name=self.filename)
                return cls(name, camunda_expression(node.text), description=description)
        raise ValidationException("定时器缺少 timeDate/timeDuration/timeCycle", node=self.node,
                                  file_name=self.filename)


def _with_qifu_events(base):
    return type(base.__name__.replace("Camunda", "Qifu"), (_TimerParserMixin, _EventParserMixin, base), {})


class QifuParser(CamundaParser):
    """SpiffWorkflow's Camunda parser with Qifu's service tasks, user tasks and timers."""

    OVERRIDE_PARSER_CLASSES = dict(CamundaParser.OVERRIDE_PARSER_CLASSES)
    for _tag, _parser in (("startEvent", CamundaStartEventParser), ("endEvent", CamundaEndEventParser),
                          ("intermediateCatchEvent", CamundaIntermediateCatchEventParser),
                          ("intermediateThrowEvent", CamundaIntermediateThrowEventParser),
                          ("boundaryEvent", CamundaBoundaryEventParser)):
        OVERRIDE_PARSER_CLASSES[full_tag(_tag)] = (_with_qifu_events(_parser), OVERRIDE_PARSER_CLASSES[full_tag(_tag)][1])
    OVERRIDE_PARSER_CLASSES[full_tag("serviceTask")] = (ExternalServiceTaskParser, ExternalServiceTask)
    OVERRIDE_PARSER_CLASSES[full_tag("userTask")] = (QifuUserTaskParser, UserTask)
    OVERRIDE_PARSER_CLASSES[full_tag("parallelGateway")] = (GatewayParser, QifuParallelGateway)
    OVERRIDE_PARSER_CLASSES[full_tag("eventBasedGateway")] = (QifuEventBasedGatewayParser, QifuEventBasedGateway)
    OVERRIDE_PARSER_CLASSES[full_tag("sendTask")] = (QifuSendTaskParser, SendTask)
    OVERRIDE_PARSER_CLASSES[full_tag("receiveTask")] = (QifuReceiveTaskParser, ReceiveTask)
    OVERRIDE_PARSER_CLASSES[full_tag("businessRuleTask")] = (QifuBusinessRuleTaskParser,
                                                             OVERRIDE_PARSER_CLASSES[full_tag("businessRuleTask")][1])
    del _tag, _parser

    def get_spec(self, process_id, required=True):
        spec = super().get_spec(process_id, required)
        _qifu_classes(spec)
        return spec


def _qifu_classes(spec: Any) -> None:
    for task_spec in list(getattr(spec, "task_specs", {}).values()):
        if type(task_spec) is BoundaryEventJoin:
            task_spec.__class__ = QifuBoundaryEventJoin  # same state; see QifuBoundaryEventJoin
    if hasattr(spec, "task_specs"):
        _event_gateway_outputs(spec)


class _TimerConverter(EventDefinitionConverter):
    def to_dict(self, event_definition):
        dct = super().to_dict(event_definition)
        dct["expression"] = event_definition.expression
        return dct


def serializer_config() -> dict[type, Any]:
    """SpiffWorkflow's Camunda serializer configuration with converters for Qifu's own specs."""
    config: dict[type, Any] = dict(CAMUNDA_CONFIG)
    config[ExternalServiceTask] = ExternalServiceTaskConverter
    config[QifuBoundaryEventJoin] = EventJoinConverter
    config[QifuParallelGateway] = ParallelGatewayConverter
    config[QifuEventBasedGateway] = EventConverter
    config[QifuGatewayCatchEvent] = EventConverter
    config[QifuMessageEventDefinition] = MessageEventDefinitionConverter
    for cls in (QifuTimeDateEventDefinition, QifuDurationTimerEventDefinition, QifuCycleTimerEventDefinition):
        config[cls] = _TimerConverter
    return config


def make_serializer() -> BpmnWorkflowSerializer:
    """A serializer of specs (deployments store their parsed spec with it)."""
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(serializer_config()))


def timer_definition(spec: Any):
    """The timer event definition of a task spec, or None."""
    definition = getattr(spec, "event_definition", None)
    if isinstance(definition, (_EngineTimer, QifuCycleTimerEventDefinition)):
        return definition
    return None
