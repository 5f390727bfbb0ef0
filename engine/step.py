"""The one way in: every change to an instance is a step, and :class:`Stepper` runs every step.

    read and lock the instance row → get the workflow (the live object this process kept after the
    previous step if the row still has that step's version and history hash, else built from the row and
    the cached spec) → act → do_engine_steps() → write the task, timer and signal-wait rows that changed and
    one history event → save state — all in ONE database transaction.

The runtime (start, complete), the management service (timers) and the task service (claims) each decide
*what* a step does; this module is *how* it is done, once. The instance row's version column makes
concurrent steps safe: the second writer's UPDATE matches no row, its transaction rolls back, and the caller
gets :class:`ConflictError`. A crash anywhere inside a step (an exception, or the process being killed)
leaves the instance at its last committed step, and the live object the step changed is not kept (see
:mod:`engine.workflow_cache`).

A step is the engine's hot path: its statements are SQL Core built once (:mod:`engine.instance_rows`,
:mod:`engine.task_rows`, :mod:`engine.jobs`, :mod:`engine.history`), because the ORM's unit of work costs several
times more per statement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import codec, history, instance_rows, jobs, signals, task_rows
from .bpmn import ExternalServiceTask
from .calendar import CalendarSettings, WorkdayCalendar, load_calendar, track_provisional
from .clock import Clock
from .codec import jsonable
from .db import Database
from .errors import ConflictError, QifuError, ServiceTaskError
from .instance_rows import InstanceRecord
from .repository import specs_for
from .scripting import RestrictedScriptEngine, ScriptLimits, StepGuard, diagram_functions
from .services import ServiceCall, ServiceRegistry
from .state import dump_state, load_state
from .workflow_cache import WorkflowCache

_log = logging.getLogger(__name__)


@dataclass
class StepContext:
    """What one step's expressions and service tasks may see.

    The calendar is read on first use: most steps compute no deadline, and reading it costs a query that
    checks whether another process changed the table.
    """

    session: Session
    instance: InstanceRecord
    now: datetime
    actor: str | None
    services: ServiceRegistry
    calendar_settings: CalendarSettings
    limits: ScriptLimits
    process_key: str = ""
    notes: list[dict[str, Any]] = field(default_factory=list)
    _calendar: WorkdayCalendar | None = None

    @property
    def calendar(self) -> WorkdayCalendar:
        if self._calendar is None:
            self._calendar = load_calendar(self.session, self.calendar_settings)
        return self._calendar


class StepScriptEngine(RestrictedScriptEngine):
    """Restricted expressions plus the hooks our specs call: services and timer due dates."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        super().__init__(diagram_functions(lambda: ctx.now, lambda: ctx.calendar), ctx.limits)

    # service tasks
    def run_service(self, my_task: Any, spec: ExternalServiceTask) -> None:
        reg = self.ctx.services.get(spec.topic)
        if reg is None:
            raise ServiceTaskError(f"未注册的服务任务主题 '{spec.topic}'", element=spec.bpmn_id)
        params = {name: self.evaluate(my_task, expr) for name, expr in spec.input_parameters}
        call = ServiceCall(
            topic=spec.topic, params=params, data=dict(my_task.data), session=self.ctx.session,
            instance_id=self.ctx.instance.id, business_key=self.ctx.instance.business_key, task_id=str(my_task.id),
            element_id=spec.bpmn_id, actor=self.ctx.actor, now=self.ctx.now, calendar=self.ctx.calendar,
            process_key=self.ctx.process_key)
        try:
            result = reg.handler(call) or {}
        except QifuError:
            raise
        except Exception as exc:
            raise ServiceTaskError(f"服务任务 '{spec.topic}' 失败: {type(exc).__name__}: {exc}",
                                   element=spec.bpmn_id) from exc
        if not isinstance(result, dict):
            raise ServiceTaskError(f"服务任务 '{spec.topic}' 返回值必须是字典", element=spec.bpmn_id)
        self.ctx.notes.extend({"element": spec.bpmn_id, "topic": spec.topic, **n} for n in call.notes)
        if spec.output_parameters:
            scope = {**my_task.data, **result}
            for name, expr in spec.output_parameters:
                my_task.data[name] = self.environment.evaluate(expr, scope)
        else:
            my_task.data.update(result)

    # timers
    def timer_due(self, my_task: Any, definition: Any) -> None:
        """Compute a timer's due instant once, when it starts waiting, and store it on the task."""
        with track_provisional() as tracker:
            value = self.evaluate(my_task, definition.expression)
            event_value = jobs.compute_timer_value(definition.kind, value, self.ctx.now)
        my_task._set_internal_data(event_value=event_value, qifu_provisional=tracker.provisional,
                                   qifu_evaluated_at=self.ctx.now.isoformat())

    def next_cycle(self, my_task: Any, definition: Any, event_value: dict[str, Any]) -> None:
        """Schedule a cycle's next occurrence; occurrences that fell due while we were down are skipped."""
        skipped = jobs.next_occurrence(event_value, self.ctx.now)
        if skipped:
            self.ctx.notes.append({"element": my_task.task_spec.bpmn_id,
                                   "note": f"停机期间错过的 {skipped} 次周期定时未补发 (missed cycle occurrences skipped)"})
        my_task._set_internal_data(event_value=event_value)


@dataclass
class StepResult:
    instance_id: int
    business_key: str
    status: str
    version: int
    event_seq: int
    opened: list[str]


Act = Callable[[BpmnWorkflow, list[Any]], None]
_CACHE_PUT = "qifu_workflow_cache_put"  # session.info key: the workflow a step leaves, filed after commit
_OBSERVED = "qifu_step_observed"  # session.info key: (process, action, start) of the step being committed

StepObserver = Callable[[str, str, float], None]
"""Told of every committed step: ``(process key, action, seconds from start to commit)``; for metrics."""


def element(task: Any, state: str | None = None) -> history.ElementRef:
    spec = task.task_spec
    return history.ElementRef(spec.bpmn_id, spec.bpmn_name, type(spec).__name__, str(task.id), state)


class Stepper:
    """Runs steps: the transaction, the workflow, the rows a step mirrors, its history event and its state."""

    def __init__(self, db: Database, clock: Clock, services: ServiceRegistry, *, limits: ScriptLimits,
                 calendar_settings: CalendarSettings, cache: WorkflowCache) -> None:
        self.db = db
        self.clock = clock
        self.services = services
        self.limits = limits
        self.calendar_settings = calendar_settings
        self.cache = cache
        self.observers: list[StepObserver] = []

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction for one step; the workflow it leaves is kept only once it is committed."""
        session = self.db.writes()
        try:
            yield session
            session.commit()
            committed = session.info.pop(_CACHE_PUT, None)
            if committed is not None:
                self.cache.put(*committed)
            observed = session.info.pop(_OBSERVED, None)
            if observed is not None and self.observers:
                elapsed = time.perf_counter() - observed[2]
                for observer in self.observers:
                    try:
                        observer(observed[0], observed[1], elapsed)
                    except Exception:  # the step is committed: a metrics failure must not look like a failed step
                        _log.exception("step observer failed")
        except IntegrityError as exc:
            session.rollback()
            if "uq_event_instance_seq" in str(exc.orig):
                raise ConflictError(instance_rows.CONFLICT) from None
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def context(self, session: Session, instance: InstanceRecord, now: datetime, actor: str | None) -> StepContext:
        return StepContext(session, instance, now, actor, self.services, self.calendar_settings, self.limits)

    def load(self, session: Session, instance_id: int) -> tuple[InstanceRecord, BpmnWorkflow]:
        """Read and lock an instance row, and get its workflow."""
        instance = instance_rows.read_locked(session, instance_id)
        return instance, self.workflow(session, instance)

    def workflow(self, session: Session, instance: InstanceRecord) -> BpmnWorkflow:
        """The workflow of a locked instance row: the live one this process kept, else built from the row."""
        workflow = self.cache.take(instance.id, instance.version, instance.history_hash, instance.state_json,
                                   dump_state)
        if workflow is None:
            workflow = load_state(instance.state_json, *specs_for(session, instance.deployment_id,
                                                                  instance.content_hash))
        return workflow

    def run(self, session: Session, instance: InstanceRecord, workflow: BpmnWorkflow, now: datetime,
            actor: str | None, action: str, act: Act, *, task: Any = None, details: dict[str, Any] | None = None,
            fired_timer: tuple[str, int] | None = None, process_key: str = "") -> StepResult:
        """Run one step on a locked instance inside ``session``'s transaction (the caller commits)."""
        if instance.status != "running" and action != "started":
            raise ConflictError("案件已结束")
        session.info[_OBSERVED] = (process_key, action, time.perf_counter())
        ctx = self.context(session, instance, now, actor)
        ctx.process_key = process_key
        engine = StepScriptEngine(ctx)
        workflow.script_engine = engine
        # What the task and timer rows mirror now: the step writes only the difference.
        tasks_before = task_rows.ready_user_task_ids(workflow)
        timers_before = jobs.waiting_timers(workflow)
        if fired_timer is not None:
            timers_before.pop(fired_timer, None)  # its row has just been claimed as fired
        signals_before = signals.waits(workflow)
        if self.cache.verify:
            task_rows.check_rows(session, instance.id, tasks_before)
            jobs.check_rows(session, instance.id, timers_before)
            signals.check_rows(session, instance.id, signals_before)
        completed: list[Any] = []
        guard = StepGuard(engine.limits, completed)  # bounds the tasks and the time of this step's engine work
        try:
            with guard:
                act(workflow, completed)
                workflow.do_engine_steps(will_complete_task=guard.will_run, did_complete_task=guard.did_run)
        except QifuError as exc:
            guard.locate(exc)
            raise
        except SpiffWorkflowException as exc:
            cause = getattr(exc, "exception", None) or exc.__cause__
            if isinstance(cause, QifuError):
                raise cause from None
            spec_id = getattr(getattr(exc, "task_spec", None), "bpmn_id", None)
            raise ServiceTaskError(f"流程执行出错: {exc}", element=spec_id) from None
        except Exception as exc:
            raise ServiceTaskError(f"流程执行出错: {type(exc).__name__}: {exc}") from exc

        ready = task_rows.ready_user_tasks(workflow)
        done = frozenset(str(t.id) for t in completed if t.task_spec.manual)
        opened, closed = task_rows.sync_open_tasks(session, instance.id, tasks_before, ready, now, engine.evaluate,
                                                   completed=done, actor=actor)
        scheduled, cancelled, moved = jobs.sync_timers(session, instance.id, timers_before, workflow, now)
        signals.sync(session, instance.id, signals_before, workflow)
        if moved:
            task_rows.refresh_due(session, ready)
        if opened or closed or moved:
            instance.due_at = task_rows.earliest_due(session, instance.id, ready)

        before = codec.loads(instance.data_json or "{}")
        merged: dict[str, Any] = {}
        for t in completed:
            merged.update(t.data)
        after = {**before, **jsonable(merged)}
        data_set = {k: v for k, v in after.items() if k not in before or before[k] != v}

        active = [element(t, "ready") for t in ready]
        active += [element(t, "waiting") for t in workflow.event_manager.tasks.values()]
        event = history.append(session, instance, history.StepEvent(
            action, now, actor, str(task.id) if task is not None else None,
            task.task_spec.bpmn_id if task is not None else None, data_set=data_set,
            completed=[element(t) for t in completed if t.task_spec.bpmn_id], active=active,
            timers_scheduled=[{"element": r.spec_id, "task": r.task_guid, "due_at": r.due_at.isoformat(),
                               "provisional": r.provisional, "occurrence": r.occurrence} for r in scheduled],
            timers_cancelled=[{"element": r.spec_id, "task": r.task_guid} for r in cancelled],
            details=jsonable(details or {}), notes=jsonable(ctx.notes) if ctx.notes else []))
        if workflow.completed:
            instance.status = "completed"
            instance.ended_at = now
        instance.state_json = dump_state(workflow)
        instance.data_json = codec.dumps(after)
        instance_rows.write(session, instance, now)
        if instance.status == "running":  # a finished case takes no more steps: nothing to keep
            session.info[_CACHE_PUT] = (instance.id, instance.version, instance.history_hash, workflow)
        return StepResult(instance.id, instance.business_key, instance.status, instance.version, event.seq,
                          [str(t.id) for t in opened])

    def record(self, session: Session, instance: InstanceRecord, event: history.StepEvent) -> None:
        """A step that changes no workflow state (a claim): its history event and the versioned row update.

        The same optimistic-concurrency rule as :meth:`run` (``UPDATE … WHERE version = read version``); the
        live workflow kept for the old version is filed under the new one, since it is unchanged.
        """
        if instance.status != "running":
            raise ConflictError("案件已结束")
        kept_under = (instance.version, instance.history_hash)
        history.append(session, instance, event)
        instance_rows.write(session, instance, event.at)
        kept = self.cache.take(instance.id, *kept_under, instance.state_json, dump_state)
        if kept is not None:
            session.info[_CACHE_PUT] = (instance.id, instance.version, instance.history_hash, kept)
