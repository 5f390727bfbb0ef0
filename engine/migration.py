"""Moving running cases to a newer version of their process, only where that is safe for the case's state.

SpiffWorkflow compares two specs (:class:`SpiffWorkflow.bpmn.util.diff.SpecDiff`: each task spec of the old
version aligned with one of the new, with the attributes that changed) and a case against that comparison
(:func:`~SpiffWorkflow.bpmn.util.diff.diff_workflow`). It leaves the decision to the application; ours is the
conservative one its documentation describes, made to fit what a step keeps in rows:

- nothing the case has already run (completed, started or failed — in the task tree, or in the history for
  stretches :mod:`engine.compaction` dropped from the tree) may be changed or removed in the new version;
- where the case stands now (open user tasks, waiting events) must exist in the new version, and may change
  only in ways the step's rows follow: an open user task its form, documentation and what comes after it (not
  its name, lane or assignment — the open task row keeps those); a waiting timer its timer value (the same
  kind of timer, not interrupting ↔ non-interrupting); a waiting event with branches of its own (a reminder
  cycle that already fired) nothing about what follows it;
- a subprocess the case is inside must still exist and obey the same rules.

A migration is one step (:meth:`engine.step.Stepper.run`, action ``migrated``) in one transaction: the task
tree is put on the new specs (SpiffWorkflow's alignment), the predicted part after each open task is
predicted again from the new version, a changed waiting timer gets its due instant computed again from the
instant it started waiting (its expression evaluated as of then), and the instance row moves to the new
deployment. The step's own sync writes the timer rows that moved and the history event; open tasks keep their
rows (and claims).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from . import history, instance_rows, jobs
from .bpmn import timer_definition
from .calendar import track_provisional
from .clock import to_utc
from .db import Database
from .errors import ConflictError, NotFoundError, QifuError
from .models import Deployment, Instance
from .repository import _serializer, specs_for
from .state import load_state
from .step import Stepper, StepResult

RAN = TaskState.COMPLETED | TaskState.STARTED | TaskState.ERROR
LIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED
PREDICTED = TaskState.PREDICTED_MASK | TaskState.FUTURE
# What may change on an open user task: its row (name, lane, candidate groups, assignee, due) stays as it is.
USER_TASK_MAY_CHANGE = frozenset({"outputs", "inputs", "documentation", "form", "description",
                                  "data_input_associations", "data_output_associations", "io_specification"})
# What may change on a waiting event: its timer value (same kind), and what follows it.
EVENT_MAY_CHANGE = frozenset({"event_definition", "outputs", "inputs", "documentation", "bpmn_name", "description"})
ATTRIBUTE_NAMES = {"bpmn_name": "名称", "lane": "泳道", "extensions": "候选组/办理人/期限等属性",
                   "event_definition": "事件定义", "cancel_activity": "是否中断", "form": "表单",
                   "outputs": "后续流向", "inputs": "前序流向", "typename": "元素类型", "manual": "任务类型",
                   "topic": "服务主题", "input_parameters": "输入参数", "output_parameters": "输出参数",
                   "documentation": "说明", "script": "脚本", "cond_task_specs": "条件"}


@dataclass(frozen=True)
class CaseVerdict:
    """One case in a dry run: whether it can move, and why not (Chinese reasons naming the elements)."""

    instance_id: int
    business_key: str
    migrate: bool
    reasons: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()  # what moves with the case: a timer due computed again, …


@dataclass(frozen=True)
class MigrationPlan:
    process_key: str
    from_version: int
    from_deployment_id: int
    to_version: int
    to_deployment_id: int
    total: int  # running cases on the old version (``cases`` may be one page of them)
    cases: list[CaseVerdict] = field(default_factory=list)


def _name(spec: Any) -> str:
    label = getattr(spec, "bpmn_name", None)
    ident = getattr(spec, "bpmn_id", None) or spec.name
    return f"「{label}」({ident})" if label else f"{ident}"


def _attributes(keys: Iterable[str]) -> str:
    return "、".join(dict.fromkeys(ATTRIBUTE_NAMES.get(k, k) for k in keys))


def _pure_prediction(task: Any) -> bool:
    """A subtree that only says what may come: no task in it has happened or is happening."""
    stack = [task]
    while stack:
        node = stack.pop()
        if not node.has_state(PREDICTED):
            return False
        stack.extend(node.children)
    return True


def _owner_ran(spec_name: str, ran: set[str]) -> bool:
    """Control specs (``X.BoundaryEventSplit``…) ran when their activity did (the history names only X)."""
    return spec_name in ran or spec_name.split(".", 1)[0] in ran


def _timer_kind(definition: Any) -> str | None:
    return getattr(definition, "kind", None) if definition is not None else None


def assess(workflow: Any, spec_diff: SpecDiff, ran: set[str]) -> tuple[list[str], list[str]]:
    """Reasons a (sub)workflow cannot move to the spec ``spec_diff`` compares it with, and what would change."""
    reasons: list[str] = []
    changes: list[str] = []
    changed, removed = spec_diff.changed, set(spec_diff.removed)
    done = {t.task_spec for t in workflow.tasks.values() if t.has_state(RAN)}
    done |= {spec for spec in workflow.spec.task_specs.values() if _owner_ran(spec.name, ran)}
    for spec in sorted(done & (set(changed) | removed), key=lambda s: s.name):
        if spec in removed:
            reasons.append(f"已办理过的 {_name(spec)} 在新版本中被删除")
        else:
            reasons.append(f"已办理过的 {_name(spec)} 在新版本中有改动（{_attributes(changed[spec])}）")
    for task in workflow.tasks.values():
        if not task.has_state(LIVE) or task.task_spec in done:
            continue
        spec = task.task_spec
        if spec in removed:
            reasons.append(f"案件当前停留的 {_name(spec)} 在新版本中已删除")
            continue
        keys = set(changed.get(spec, ()))
        if not keys:
            continue
        new_spec = spec_diff.alignment[spec]
        definition, new_definition = timer_definition(spec), timer_definition(new_spec)
        if task.state == TaskState.READY and spec.manual:
            blocked = keys - USER_TASK_MAY_CHANGE
            if blocked:
                reasons.append(f"正在办理的任务 {_name(spec)} 的{_attributes(blocked)}有改动，已开出的待办无法随之更新")
        elif task.state == TaskState.WAITING:
            blocked = keys - EVENT_MAY_CHANGE
            if "event_definition" in keys and (definition is None or _timer_kind(definition) != _timer_kind(
                    new_definition) or type(definition) is not type(new_definition)):
                blocked.add("event_definition")
            if blocked:
                reasons.append(f"正在等待的 {_name(spec)} 的{_attributes(blocked)}有改动")
            elif "event_definition" in keys:
                changes.append(f"定时器 {_name(spec)} 按新版本重新计算到期时间")
        else:
            reasons.append(f"{_name(spec)} 正在执行中且有改动（{_attributes(keys)}）")
        if "outputs" in keys and not all(_pure_prediction(c) for c in task.children):
            reasons.append(f"{_name(spec)} 已产生分支，其后续流向在新版本中有改动")
    return reasons, changes


# --- reading a case's past ------------------------------------------------------------------------------
def ran_elements(session: Session, instance_id: int) -> set[str]:
    """Every element the case's history records as completed (also what compaction dropped from the tree)."""
    return {ref.element for event in history.events_for(session, instance_id) for ref in event.completed
            if ref.element}


def check(session: Session, workflow: BpmnWorkflow, new_spec: Any, new_subs: dict[str, Any],
          ran: set[str]) -> tuple[list[str], list[str], Any]:
    """Reasons the case cannot move, what would change, and the diffs :func:`apply` needs."""
    registry = _serializer.registry
    top_spec = SpecDiff(registry, workflow.spec, new_spec)
    diffs = [(workflow, top_spec, new_spec)]
    reasons, changes = assess(workflow, top_spec, ran)
    for sub in workflow.subprocesses.values():
        target = new_subs.get(sub.spec.name)
        if target is None:
            reasons.append(f"案件所在的子流程 {sub.spec.name} 在新版本中已不存在")
            continue
        sub_spec = SpecDiff(registry, sub.spec, target)
        more, follow = assess(sub, sub_spec, ran)
        reasons += more
        changes += follow
        diffs.append((sub, sub_spec, target))
    return reasons, changes, diffs


# --- moving a case --------------------------------------------------------------------------------------
def _prediction_subtree(task: Any) -> list[Any]:
    out, stack = [], list(task.children)
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    return out


def _repredict(task: Any, stale: bool) -> None:
    """Predict again what follows an open task, from its new spec, when the old prediction no longer fits.

    Only pure predictions are replaced (branches a fired cycle started are real and stay); children of a
    waiting event keep the state they were predicted in (a boundary event's branch is only possible).
    """
    if not stale or not all(_pure_prediction(c) for c in task.children):
        return
    state = task.children[0].state if task.children else TaskState.MAYBE
    for child in list(task.children):
        task.workflow._remove_task(child.id)
    if task.state == TaskState.READY:
        task.task_spec._predict_hook(task)
    else:
        task._sync_children(task.task_spec.outputs, state)
    for child in task.children:
        child.task_spec._predict(child, mask=PREDICTED)


def _evaluated_at(task: Any, default: datetime) -> datetime:
    value = task._get_internal_data("qifu_evaluated_at")
    try:
        return to_utc(value) if value else default
    except (TypeError, ValueError):
        return default


def _recompute_timer(task: Any, now: datetime) -> dict[str, Any]:
    """A waiting timer whose value changed: its due instant again, from the instant it started waiting."""
    definition = timer_definition(task.task_spec)
    engine = task.workflow.script_engine
    origin = _evaluated_at(task, now)
    before = jobs.timer_due(task)
    ctx = getattr(engine, "ctx", None)
    saved = ctx.now if ctx is not None else None
    try:
        if ctx is not None:
            ctx.now = origin  # now() in the expression means the instant the timer started waiting
        with track_provisional() as tracker:
            value = engine.evaluate(task, definition.expression)
            event_value = jobs.compute_timer_value(definition.kind, value, origin)
    finally:
        if ctx is not None:
            ctx.now = saved
    task._set_internal_data(event_value=event_value, qifu_provisional=tracker.provisional,
                            qifu_evaluated_at=origin.isoformat())
    after = jobs.timer_due(task)
    return {"element": task.task_spec.bpmn_id, "task": str(task.id),
            "from": before[0].isoformat() if before else None, "to": after[0].isoformat() if after else None}


def apply(diffs: list[tuple[Any, SpecDiff, Any]], new_subs: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Put the task trees on the new specs (SpiffWorkflow's alignment) and predict the future again.

    Returns the timers whose due instant was computed again. Call only after :func:`check` found no reason.
    """
    moved: list[dict[str, Any]] = []
    for wf, spec_diff, target in diffs:
        wdiff = WorkflowDiff(wf, spec_diff)
        touched = set(spec_diff.changed) | set(spec_diff.removed)
        live = [t for t in wf.tasks.values() if t.has_state(LIVE)]
        stale = {t.id: ("outputs" in spec_diff.changed.get(t.task_spec, ()))
                 or any(d.task_spec in touched for d in _prediction_subtree(t)) for t in live}
        timers = [t for t in wdiff.changed if t.state == TaskState.WAITING
                  and "event_definition" in spec_diff.changed[t.task_spec]]
        wf.spec = target
        for task in list(wf.tasks.values()):
            aligned = wdiff.alignment.get(task)
            if aligned is not None:
                task.task_spec = aligned
        for task in live:
            _repredict(task, stale[task.id])
        for task in [t for t in wf.tasks.values() if t.has_state(TaskState.PREDICTED_MASK)]:
            if task.id in wf.tasks and target.task_specs.get(task.task_spec.name) is not task.task_spec:
                wf._remove_task(task.id)  # a prediction of something the new version no longer has
        for task in timers:
            moved.append(_recompute_timer(task, now))
        if getattr(wf, "last_task", None) is not None and wf.last_task.id not in wf.tasks:
            wf.last_task = None
    top = diffs[0][0]
    if hasattr(top, "subprocess_specs"):
        top.subprocess_specs = new_subs
    return moved


# --- the service ----------------------------------------------------------------------------------------
_dep, _inst = Deployment.__table__, Instance.__table__
_MOVE_ROW = (update(_inst).where(_inst.c.id == bindparam("b_id"), _inst.c.version == bindparam("b_version"))
             .values(deployment_id=bindparam("deployment_id")))


@dataclass(frozen=True)
class _Version:
    id: int
    process_key: str
    version: int
    content_hash: str


class MigrationService:
    """Dry runs and migrations of running cases between two versions of one process."""

    def __init__(self, db: Database, stepper: Stepper) -> None:
        self.db = db
        self.stepper = stepper

    def _version(self, session: Session, process_key: str, version: int) -> _Version:
        row = session.execute(select(_dep.c.id, _dep.c.process_key, _dep.c.version, _dep.c.content_hash)
                              .where(_dep.c.process_key == process_key, _dep.c.version == version)).one_or_none()
        if row is None:
            raise NotFoundError(f"流程 {process_key} 没有版本 {version}")
        return _Version(*row)

    def _versions(self, session: Session, process_key: str, from_version: int,
                  to_version: int) -> tuple[_Version, _Version]:
        if from_version == to_version:
            raise QifuError("迁移的源版本与目标版本相同")
        return self._version(session, process_key, from_version), self._version(session, process_key, to_version)

    def plan(self, process_key: str, from_version: int, to_version: int, *, offset: int = 0,
             limit: int | None = None) -> MigrationPlan:
        """A dry run: per running case of ``from_version`` (by id; ``limit`` of them), migrate or not and why."""
        with self.db.read() as session:
            old, new = self._versions(session, process_key, from_version, to_version)
            running = (_inst.c.deployment_id == old.id) & (_inst.c.status == "running")
            total = session.scalar(select(func.count()).select_from(_inst).where(running)) or 0
            query = (select(_inst.c.id, _inst.c.business_key, _inst.c.state_json).where(running)
                     .order_by(_inst.c.id).offset(offset))
            if limit is not None:
                query = query.limit(limit)
            new_spec, new_subs = specs_for(session, new.id, new.content_hash)
            old_specs = specs_for(session, old.id, old.content_hash)
            cases = []
            for row in session.execute(query):
                workflow = load_state(row.state_json, *old_specs)
                reasons, changes, _ = check(session, workflow, new_spec, new_subs, ran_elements(session, row.id))
                cases.append(CaseVerdict(row.id, row.business_key, not reasons, tuple(reasons), tuple(changes)))
        return MigrationPlan(process_key, old.version, old.id, new.version, new.id, total, cases)

    def migrate(self, instance_id: int, process_key: str, from_version: int, to_version: int, *,
                actor: str | None) -> StepResult:
        """Move one running case in one step (action ``migrated``); refused unless :func:`check` finds it safe."""
        with self.stepper.transaction() as session:
            old, new = self._versions(session, process_key, from_version, to_version)
            instance = instance_rows.read_locked(session, instance_id)
            if instance.deployment_id != old.id:
                raise ConflictError(f"案件 {instance.business_key} 不在 {process_key} 版本 {from_version} 上")
            if instance.status != "running":
                raise ConflictError(f"案件 {instance.business_key} 已结束，无需迁移")
            workflow = self.stepper.workflow(session, instance)
            new_spec, new_subs = specs_for(session, new.id, new.content_hash)
            reasons, changes, diffs = check(session, workflow, new_spec, new_subs, ran_elements(session, instance_id))
            if reasons:
                raise ConflictError(f"案件 {instance.business_key} 不能迁移：" + "；".join(reasons),
                                    reasons=reasons)
            now = self.stepper.clock.now()
            moved: list[dict[str, Any]] = []

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                moved.extend(apply(diffs, new_subs, now))
                ctx = getattr(wf.script_engine, "ctx", None)
                if ctx is not None:
                    ctx.notes.append({"note": f"流程迁移：版本 {old.version} → 版本 {new.version}"
                                              + (f"（{'；'.join(changes)}）" if changes else "")})

            details = {"process": process_key, "from": {"version": old.version, "deployment_id": old.id},
                       "to": {"version": new.version, "deployment_id": new.id}, "timers_recomputed": moved}
            result = self.stepper.run(session, instance, workflow, now, actor, "migrated", act, details=details,
                                      process_key=process_key)
            cursor = session.execute(_MOVE_ROW, {"b_id": instance.id, "b_version": instance.version,
                                                 "deployment_id": new.id})
            if cursor.rowcount != 1:
                raise ConflictError(instance_rows.CONFLICT)
            return result

    def migrate_many(self, instance_ids: Iterable[int], process_key: str, from_version: int, to_version: int, *,
                     actor: str | None) -> Iterator[tuple[int, StepResult | None, QifuError | None]]:
        """Each case in a transaction of its own: (id, result, None) when moved, (id, None, error) when not."""
        for instance_id in dict.fromkeys(instance_ids):
            try:
                yield instance_id, self.migrate(instance_id, process_key, from_version, to_version, actor=actor), None
            except QifuError as exc:
                yield instance_id, None, exc
