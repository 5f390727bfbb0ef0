"""An instance's saved state: SpiffWorkflow's serialisation of the workflow *without* its spec, versioned.

The spec lives once per deployment version (:mod:`engine.repository`), so a case's state is only what
happened: its task tree (compacted, :mod:`engine.compaction`), data and events. The state is written through
SpiffWorkflow's public serializer — :meth:`BpmnWorkflowSerializer.configure` with a converter of our own for
the top-level workflow, :meth:`~BpmnWorkflowSerializer.serialize_json` and
:meth:`~BpmnWorkflowSerializer.from_dict` — and carries the serializer's version. On load the stored version
is honoured (the JSON is compact, :class:`_CompactEncoder`): a state saved by an older SpiffWorkflow is migrated with SpiffWorkflow's own migrations (which
expect the spec inside the document, so it is put in for the migration and taken out again); a version this
code does not know is refused, never guessed at.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnWorkflowConverter,
    TaskConverter,
)
from SpiffWorkflow.bpmn.serializer.migration.version_migration import MIGRATIONS
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SPIFF_VERSION
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge

from . import codec, compaction
from .bpmn import serializer_config
from .errors import QifuError

STATE_VERSION = SPIFF_VERSION  # the format of state_json: SpiffWorkflow's serializer version (1.5)
COMPACT_ABOVE = 16  # tasks: a smaller tree has nothing worth the walk; a looping case is still kept near this size
_SPEC = "qifu_spec"  # where the spec objects wait while a state is restored (never stored)


class _SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """The top-level workflow without its spec: the spec is given back on restore, from the deployment."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        # WorkflowConverter.to_dict's document, with the task ids' text cached (see _id)
        registry = self.registry
        dct = {
            "data": registry.convert(registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": _id(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": {_id(k): registry.convert(v) for k, v in workflow.tasks.items()},
            "root": _id(workflow.task_tree.id),
        }
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any]) -> BpmnWorkflow:
        spec, subprocess_specs = dct.pop(_SPEC)
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    """JSON values only (no datetime, UUID, set, callable): nothing for the registry to convert."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


_ID_TEXT: dict[UUID, str] = {}  # str(uuid) costs more than the rest of a task's dict


def _id(value: UUID) -> str:
    text = _ID_TEXT.get(value)
    if text is None:
        if len(_ID_TEXT) > 100_000:
            _ID_TEXT.clear()
        text = _ID_TEXT[value] = str(value)
    return text


class _TaskConverter(TaskConverter):
    """SpiffWorkflow's task converter with two changes: the same document, produced faster, and task data
    put through the registry here (SpiffWorkflow leaves that to its JSON encoder), so the state can be
    written by orjson and a datetime a handler left in the data comes back a datetime."""

    def _value(self, value: Any) -> Any:
        return value if _plain(value) else self.registry.convert(value)

    def to_dict(self, task: Any) -> dict[str, Any]:
        parent = task.parent
        if parent is None:
            data, delta = self._value(self.registry.clean(task.data)), {}
        else:
            data = {}
            delta = {"updates": self._value(DeepMerge.get_updated_keys(parent.data, task.data)),
                     "deletions": DeepMerge.get_deleted_keys(parent.data, task.data)}
        internal = task.internal_data
        return {
            "id": _id(task.id),
            "parent": _id(task._parent) if parent is not None else None,
            "children": [_id(child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task.state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": internal if _plain(internal) else self.registry.convert(internal),
            "data": data,
            "delta": delta,
        }


class _CompactEncoder(json.JSONEncoder):
    """Compact JSON that keeps Chinese text as it is (a third of the bytes of ``\\u`` escapes): the state is
    written in every step, and every byte is a byte of that step's write."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(ensure_ascii=False, separators=(",", ":"))
        super().__init__(**kwargs)


def _serializer() -> BpmnWorkflowSerializer:
    config = serializer_config()
    config[BpmnWorkflow] = _SpeclessWorkflowConverter
    config[Task] = _TaskConverter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config), version=STATE_VERSION,
                                  json_encoder_cls=_CompactEncoder)


_state = _serializer()
_specs = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(serializer_config()))  # to migrate old states
_WORKFLOW_TYPENAME = _state.registry.typenames[BpmnWorkflow]


def dump_state(workflow: BpmnWorkflow) -> str:
    """Serialise the instance state, after compacting its task tree (see :mod:`engine.compaction`).

    Compaction changes ``workflow`` in place, so call this last in a step. A tree of up to
    :data:`COMPACT_ABOVE` tasks is saved as it is: walking it costs more than its few finished tasks do.
    """
    if len(workflow.tasks) > COMPACT_ABOVE or workflow.subprocesses:
        compaction.compact(workflow)
    dct = _state.to_dict(workflow)
    dct[_state.VERSION_KEY] = STATE_VERSION
    try:
        return orjson.dumps(dct).decode("utf-8")  # the same JSON as _CompactEncoder's, several times faster
    except TypeError:  # what only SpiffWorkflow's encoder knows (a set in the data), an integer beyond 64 bits
        return _state.serialize_json(workflow)


def load_state(state_json: str, spec: Any, subprocess_specs: dict[str, Any]) -> BpmnWorkflow:
    """The workflow a saved state describes, on the given spec; an older format is migrated first."""
    dct = codec.loads(state_json)
    version = dct.pop(_state.VERSION_KEY, None)
    if version != STATE_VERSION:
        _migrate(dct, version, spec, subprocess_specs)
    dct[_SPEC] = (spec, subprocess_specs)
    dct.setdefault("typename", _WORKFLOW_TYPENAME)  # states saved before this module omitted it
    return _state.from_dict(dct)


def _migrate(dct: dict[str, Any], version: str | None, spec: Any, subprocess_specs: dict[str, Any]) -> None:
    """Bring a state saved in an older SpiffWorkflow format up to date with SpiffWorkflow's migrations."""
    if version not in MIGRATIONS:
        raise QifuError(f"无法读取案件状态：未知的存储格式版本 {version!r}（本系统为 {STATE_VERSION}）",
                        version=version)
    dct["spec"] = _specs.to_dict(spec)
    dct["subprocess_specs"] = {name: _specs.to_dict(sub) for name, sub in subprocess_specs.items()}
    MIGRATIONS[version](dct)
    dct.pop("spec", None)
    dct.pop("subprocess_specs", None)
