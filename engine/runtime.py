"""Instances (Camunda's RuntimeService): start a case, complete a task, deliver a message or broadcast a signal
from outside, and read instances for display.

Each action is one step (:class:`engine.step.Stepper`): one transaction, the instance's version checked. The
``also`` callback of :meth:`RuntimeService.start` and :meth:`RuntimeService.complete_task` runs inside the
step's transaction after the step: a caller's own writes (the intake API's idempotency record, an
attachment uploaded with a form) are committed with the step or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import history, instance_rows, signals
from .bpmn import QifuMessageEventDefinition
from .codec import jsonable
from .db import Database
from .errors import ConflictError, NotCorrelatedError, NotFoundError, QifuError
from .forms import form_fields, validate_form
from .migration import MigrationPlan, MigrationService
from .models import Deployment, Instance
from .repository import DeploymentRef, find_deployment, specs_for
from .state import load_state
from .step import Stepper, StepResult

Also = Callable[[Session, StepResult], None]


@dataclass
class SignalBroadcast:
    """What a broadcast did: the steps of the cases that caught the signal, and the cases whose step failed."""

    signal: str
    delivered: list[StepResult] = field(default_factory=list)
    failed: list[tuple[int, QifuError]] = field(default_factory=list)


@dataclass(frozen=True)
class InstanceView:
    """An instance as pages show it (a plain value, no session attached); ``data`` is the current case data."""

    id: int
    business_key: str
    process_key: str
    process_name: str | None
    version: int
    deployment_id: int
    status: str
    data: dict[str, Any]
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    due_at: datetime | None


_inst, _dep = Instance.__table__, Deployment.__table__
_VIEW = (select(_inst.c.id, _inst.c.business_key, _dep.c.process_key, _dep.c.name.label("process_name"),
                _dep.c.version, _inst.c.deployment_id, _inst.c.status, _inst.c.data_json, _inst.c.started_at,
                _inst.c.updated_at, _inst.c.ended_at, _inst.c.due_at)
         .join_from(_inst, _dep, _dep.c.id == _inst.c.deployment_id))


def _message_definitions(task_spec: Any) -> list[Any]:
    definition = getattr(task_spec, "event_definition", None)
    found = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
    return [d for d in found if isinstance(d, MessageEventDefinition)]


def _view(row: Any) -> InstanceView:
    values = row._asdict()
    values["data"] = json.loads(values.pop("data_json") or "{}")
    return InstanceView(**values)


class RuntimeService:
    def __init__(self, db: Database, stepper: Stepper) -> None:
        self.db = db
        self.stepper = stepper
        self._migration = MigrationService(db, stepper)

    @property
    def clock(self) -> Any:
        return self.stepper.clock

    # -- acting -----------------------------------------------------------------------------------------
    def start(self, process_key: str, business_key: str | Callable[[Session], str],
              data: dict[str, Any] | None = None, *, actor: str | None = None, deployment_id: int | None = None,
              also: Also | None = None) -> StepResult:
        """Start a case of the newest version of ``process_key`` (or of ``deployment_id``).

        ``business_key`` is the key, or a function that allocates one inside the start's transaction (a
        counter that must not leave a gap when the start is refused).
        """
        data = dict(data or {})
        jsonable(data)
        with self.stepper.transaction() as session:
            deployment = find_deployment(session, process_key=process_key, deployment_id=deployment_id)
            if deployment is None:
                raise NotFoundError(f"流程未部署: {process_key}")
            if callable(business_key):
                business_key = business_key(session)
            now = self.clock.now()
            instance = instance_rows.insert_new(session, deployment=deployment, business_key=business_key,
                                                now=now, actor=actor)
            workflow = BpmnWorkflow(*specs_for(session, deployment.id, deployment.content_hash))

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                for t in wf.get_tasks(state=TaskState.READY):
                    t.data.update(data)

            result = self.stepper.run(session, instance, workflow, now, actor, "started", act,
                                      details={"process": deployment.process_key, "version": deployment.version,
                                               "data": data}, process_key=deployment.process_key)
            if also is not None:
                also(session, result)
            return result

    def complete_task(self, task_guid: str, data: dict[str, Any] | None = None, *, actor: str | None = None,
                      expected_version: int | None = None, enforce_assignee: bool = True,
                      also: Also | None = None) -> StepResult:
        """Validate ``data`` against the task's form, then complete it. Conflicts raise ConflictError."""
        with self.stepper.transaction() as session:
            found = instance_rows.read_for_task(session, task_guid)
            if found is None:
                raise ConflictError("任务已办结或不存在 (the task is no longer open)")
            instance, assignee = found
            if enforce_assignee and assignee and actor and assignee != actor:
                raise ConflictError(f"任务已由 {assignee} 认领")
            if expected_version is not None and instance.version != expected_version:
                raise ConflictError(instance_rows.CONFLICT)
            workflow = self.stepper.workflow(session, instance)
            task = workflow.get_task_from_id(UUID(task_guid))
            if task is None or task.state != TaskState.READY or not task.task_spec.manual:
                raise ConflictError("任务当前不可办理")
            clean = validate_form(form_fields(task.task_spec), data or {})

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                task.data.update(clean)
                task.run()
                completed.append(task)

            result = self.stepper.run(session, instance, workflow, self.clock.now(), actor, "task_completed", act,
                                      task=task, details={"form": clean}, process_key=workflow.spec.name)
            if also is not None:
                also(session, result)
            return result

    def correlate_message(self, name: str, business_key: str, data: dict[str, Any] | None = None, *,
                          actor: str | None = None, also: Also | None = None) -> StepResult:
        """Deliver the message ``name`` from outside to the case ``business_key``, as one step.

        Every event of the case waiting for a message of that name catches it (an intermediate catch event,
        a receive task, a boundary event, a catch event after an event-based gateway); ``data`` becomes case
        variables, as Camunda's correlation with variables sets them. When there is no case ``business_key``
        yet, the process whose message start event is ``name`` starts it with that key, in this step. A case
        that does not exist (and no process starts by that message), has ended or waits for no such message
        is refused with :class:`NotCorrelatedError` (``details``: ``message_name``,
        ``business_key`` and ``waiting``, the messages it does wait for); nothing changes then.
        """
        data = dict(data or {})
        jsonable(data)
        with self.stepper.transaction() as session:
            instance = instance_rows.read_locked_by_key(session, business_key)
            if instance is None:
                result = self._start_by_message(session, name, business_key, data, actor)
                if also is not None:
                    also(session, result)
                return result
            if instance.status != "running":
                raise NotCorrelatedError(f"消息 {name} 无法投递：案件 {business_key} 已结束", message_name=name,
                                         business_key=business_key, waiting=[])
            workflow = self.stepper.workflow(session, instance)
            event = BpmnEvent(QifuMessageEventDefinition(name), payload={
                "payload": data, "result_var": None, "qifu_variables": data})
            waiting = list(workflow.event_manager.tasks.values())
            if not any(t.task_spec.catches(t, event) for t in waiting):
                names = sorted({d.name for t in waiting for d in _message_definitions(t.task_spec)})
                raise NotCorrelatedError(
                    f"消息 {name} 无法投递：案件 {business_key} 没有在等待该消息"
                    + (f"（正在等待：{'、'.join(names)}）" if names else ""),
                    message_name=name, business_key=business_key, waiting=names)

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                wf.catch(event)

            result = self.stepper.run(session, instance, workflow, self.clock.now(), actor, "message_received", act,
                                      details={"message": name, "data": data}, process_key=workflow.spec.name)
            if also is not None:
                also(session, result)
            return result

    def _start_by_message(self, session: Session, name: str, business_key: str, data: dict[str, Any],
                          actor: str | None) -> StepResult:
        """No case ``business_key`` yet: the newest version of the process whose message start event is ``name``
        starts one (Camunda's correlation starts an instance where no execution waits), in this step."""
        starts = self._message_starts(session, name)
        if not starts:
            raise NotCorrelatedError(f"消息 {name} 无法投递：案件 {business_key} 不存在，也没有以该消息开始的流程",
                                     message_name=name, business_key=business_key, waiting=[])
        if len(starts) > 1:
            raise NotCorrelatedError(f"消息 {name} 可启动多个流程（{'、'.join(d.process_key for d in starts)}），无法确定",
                                     message_name=name, business_key=business_key, waiting=[])
        deployment = starts[0]
        now = self.clock.now()
        instance = instance_rows.insert_new(session, deployment=deployment, business_key=business_key, now=now,
                                            actor=actor)
        workflow = BpmnWorkflow(*specs_for(session, deployment.id, deployment.content_hash))
        event = BpmnEvent(QifuMessageEventDefinition(name), payload={
            "payload": data, "result_var": None, "qifu_variables": data})

        def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
            wf.do_engine_steps(did_complete_task=completed.append)  # up to the start event, waiting for it
            wf.catch(event)

        return self.stepper.run(session, instance, workflow, now, actor, "started", act,
                                details={"process": deployment.process_key, "version": deployment.version,
                                         "data": data, "message": name}, process_key=deployment.process_key)

    @staticmethod
    def _message_starts(session: Session, name: str) -> list[DeploymentRef]:
        """The newest version of each process key whose start event waits for the message ``name`` (one query
        over the process keys; their specs come from the in-memory cache)."""
        newest = (select(_dep.c.process_key, func.max(_dep.c.version).label("version"))
                  .group_by(_dep.c.process_key).subquery())
        rows = session.execute(select(_dep.c.id, _dep.c.process_key, _dep.c.version, _dep.c.content_hash).join(
            newest, (newest.c.process_key == _dep.c.process_key) & (newest.c.version == _dep.c.version)))
        found = []
        for row in rows:
            spec, _subs = specs_for(session, row.id, row.content_hash)
            if any(isinstance(t, StartEvent) and any(d.name == name for d in _message_definitions(t))
                   for t in spec.task_specs.values()):
                found.append(DeploymentRef(row.id, row.process_key, row.version, row.content_hash))
        return found

    def broadcast_signal(self, name: str, data: dict[str, Any] | None = None, *,
                         actor: str | None = None) -> SignalBroadcast:
        """Broadcast the signal ``name`` from outside to every case waiting for it: one step per case.

        The cases are found by ``signal_wait`` (:mod:`engine.signals`, one index range, a page at a time), each is
        a step of its own (every event of it waiting for that signal catches it; ``data`` become case variables),
        so a case whose step fails keeps its state and is reported in ``failed`` while the others proceed. No
        case waiting for the signal is :class:`NotCorrelatedError`; nothing changes then.
        """
        data = dict(data or {})
        jsonable(data)
        outcome = SignalBroadcast(name)
        after, found = 0, False
        while True:
            with self.db.read() as session:
                page = signals.waiting_instances(session, name, after, self._SIGNAL_PAGE)
            if not page:
                break
            found = True
            after = page[-1]
            for instance_id in page:
                try:
                    result = self._signal_case(instance_id, name, data, actor)
                except QifuError as exc:
                    outcome.failed.append((instance_id, exc))
                    continue
                if result is not None:
                    outcome.delivered.append(result)
        if not found:
            raise NotCorrelatedError(f"信号 {name} 无法广播：没有案件在等待该信号", signal_name=name)
        return outcome

    _SIGNAL_PAGE = 100

    def _signal_case(self, instance_id: int, name: str, data: dict[str, Any], actor: str | None) -> StepResult | None:
        with self.stepper.transaction() as session:
            instance, workflow = self.stepper.load(session, instance_id)
            event = BpmnEvent(SignalEventDefinition(name), payload=dict(data))
            if instance.status != "running" or not any(
                    t.task_spec.catches(t, event) for t in workflow.event_manager.tasks.values()):
                return None  # it stopped waiting since the page was read

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                wf.catch(event)

            return self.stepper.run(session, instance, workflow, self.clock.now(), actor, "signal_received", act,
                                    details={"signal": name, "data": data}, process_key=workflow.spec.name)

    def record_event(self, instance_id: int, action: str, *, actor: str | None,
                     details: dict[str, Any] | None = None, also: Callable[[Session], None] | None = None) -> None:
        """Record something that happened to a running case without moving its workflow (an attachment
        added): one history event and the caller's writes (``also``), in one versioned step."""
        with self.stepper.transaction() as session:
            instance = instance_rows.read_locked(session, instance_id)
            if also is not None:
                also(session)
            self.stepper.record(session, instance, history.StepEvent(action, self.clock.now(), actor,
                                                                     details=jsonable(details or {})))

    # -- migration to a newer version (engine/migration.py) -------------------------------------------
    def migration_plan(self, process_key: str, from_version: int, to_version: int, *, offset: int = 0,
                       limit: int | None = None) -> MigrationPlan:
        """Dry run: per running case of ``from_version``, whether it can move to ``to_version`` and why not."""
        return self._migration.plan(process_key, from_version, to_version, offset=offset, limit=limit)

    def migrate(self, instance_id: int, process_key: str, from_version: int, to_version: int, *,
                actor: str | None = None) -> StepResult:
        """Move one running case to ``to_version`` in one step (history action ``migrated``), if safe."""
        return self._migration.migrate(instance_id, process_key, from_version, to_version, actor=actor)

    def migrate_many(self, instance_ids: Iterable[int], process_key: str, from_version: int, to_version: int, *,
                     actor: str | None = None) -> list[tuple[int, StepResult | None, Any]]:
        """:meth:`migrate` for each case, each in a transaction of its own; (id, result or None, error or None)."""
        return list(self._migration.migrate_many(instance_ids, process_key, from_version, to_version, actor=actor))

    # -- reading ----------------------------------------------------------------------------------------
    @staticmethod
    def view() -> Any:
        """The instances as a read model another query may join (``case_instance``: id, business_key, status,
        due_at — the earliest due instant of its open tasks —, started_at, ended_at)."""
        return select(_inst.c.id, _inst.c.business_key, _inst.c.status, _inst.c.due_at, _inst.c.started_at,
                      _inst.c.ended_at).subquery("case_instance")

    def count(self, *, status: str | None = None) -> int:
        """How many instances there are (in ``status``, when given)."""
        query = select(func.count()).select_from(_inst)
        if status is not None:
            query = query.where(_inst.c.status == status)
        with self.db.read() as session:
            return session.scalar(query) or 0

    def instances(self, ids: Iterable[int]) -> dict[int, InstanceView]:
        """Instances by id (a page's worth: one bind parameter per id)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        with self.db.read() as session:
            rows = session.connection().execute(_VIEW.where(_inst.c.id.in_(wanted)))
            return {r.id: _view(r) for r in rows}

    def instance(self, business_key: str) -> InstanceView | None:
        """An instance by its business key, or None."""
        with self.db.read() as session:
            row = session.connection().execute(_VIEW.where(_inst.c.business_key == business_key)).one_or_none()
        return _view(row) if row is not None else None

    def workflow(self, instance_id: int) -> BpmnWorkflow:
        """The workflow of an instance as stored (for display and tests; never the live cached object)."""
        with self.db.read() as session:
            row = session.connection().execute(
                select(_inst.c.state_json, _inst.c.deployment_id, _dep.c.content_hash)
                .join_from(_inst, _dep, _dep.c.id == _inst.c.deployment_id).where(_inst.c.id == instance_id)
            ).one_or_none()
            if row is None:
                raise NotFoundError(f"案件不存在: {instance_id}")
            return load_state(row.state_json, *specs_for(session, row.deployment_id, row.content_hash))
