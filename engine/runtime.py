"""Instances (Camunda's RuntimeService): start a case, complete a task, fire a timer — one way in.

Every change to an instance goes through :meth:`Runtime._step`:

    read and lock the instance row → get the workflow (the live object this process kept after the
    previous step if the row still has that step's version and history hash, else built from the row and
    the cached spec) → act → do_engine_steps() → write the task and timer rows that changed and one history
    event → save state — all in ONE database transaction.

The instance row's version column makes concurrent steps safe: the second writer's UPDATE matches no row,
its transaction rolls back, and the caller gets :class:`ConflictError`. A crash anywhere inside a step (an
exception, or the process being killed) leaves the instance at its last committed step, and the live
object the step changed is not kept (see :mod:`engine.workflow_cache`).

Instance state is SpiffWorkflow's serialization *without* the spec (the spec lives once per deployment
version), so a step costs the same early and late in a case's life. The statements of a step are SQL Core
built once (:mod:`engine.instance_rows`, :mod:`engine.tasks`, :mod:`engine.jobs`, :mod:`engine.history`):
the ORM's unit of work costs several times more per statement, and a step is the engine's hot path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from . import compaction, history, instance_rows, jobs, tasks
from .bpmn import ExternalServiceTask, make_serializer
from .calendar import WorkdayCalendar, load_calendar, track_provisional
from .clock import Clock, SystemClock, to_utc
from .errors import ConflictError, NotFoundError, QifuError, ServiceTaskError
from .forms import form_fields, validate_form
from .instance_rows import InstanceRecord
from .models import Deployment, Instance, Timer
from .repository import find_deployment, load_specs, specs_for
from .scripting import RestrictedScriptEngine, StepGuard, as_datetime
from .services import ServiceCall, ServiceRegistry
from .services import registry as default_registry
from .workflow_cache import WorkflowCache

STATE_VERSION = "1.5"


# --- state (de)serialization without the spec --------------------------------------------------------
class _SpeclessWorkflowConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def restore(self, dct, spec, subprocess_specs):
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_serializer = make_serializer()
_converter = _SpeclessWorkflowConverter(BpmnWorkflow, _serializer.registry)


def dump_state(workflow: BpmnWorkflow) -> str:
    """Serialise the instance state (without the spec), after compacting its task tree (see compaction.py).

    Compaction changes ``workflow`` in place, so call this last in a step.
    """
    compaction.compact(workflow)
    registry = _serializer.registry
    registry._encoder_mode = True
    try:
        dct = _converter.to_dict(workflow)
        dct["serializer_version"] = STATE_VERSION
        return json.dumps(dct, cls=_serializer._encoder_cls, separators=(",", ":"), ensure_ascii=False)
    finally:
        registry._encoder_mode = False


def load_state(state_json: str, spec: Any, subprocess_specs: dict[str, Any]) -> BpmnWorkflow:
    dct = json.loads(state_json)
    dct.pop("serializer_version", None)
    return _converter.restore(dct, spec, subprocess_specs)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


# --- the per-step script engine ------------------------------------------------------------------------
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
    notes: list[dict[str, Any]] = field(default_factory=list)
    _calendar: WorkdayCalendar | None = None

    @property
    def calendar(self) -> WorkdayCalendar:
        if self._calendar is None:
            self._calendar = load_calendar(self.session)
        return self._calendar


class StepScriptEngine(RestrictedScriptEngine):
    """Restricted expressions plus the hooks our specs call: services and timer due dates."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx

        def now() -> str:
            return ctx.now.isoformat()

        def working_days_after(start: Any, n: int) -> str:
            return ctx.calendar.deadline(to_utc(as_datetime(start)), int(n)).isoformat()

        def end_of_working_day(start: Any = None) -> str:
            return ctx.calendar.end_of_working_day(to_utc(as_datetime(start)) if start else ctx.now).isoformat()

        def is_workday(day: Any) -> bool:
            return ctx.calendar.is_workday(as_datetime(day).date())

        super().__init__({"now": now, "working_days_after": working_days_after,
                          "end_of_working_day": end_of_working_day, "is_workday": is_workday})

    # service tasks
    def run_service(self, my_task: Any, spec: ExternalServiceTask) -> None:
        reg = self.ctx.services.get(spec.topic)
        if reg is None:
            raise ServiceTaskError(f"未注册的服务任务主题 '{spec.topic}'", element=spec.bpmn_id)
        params = {name: self.evaluate(my_task, expr) for name, expr in spec.input_parameters}
        call = ServiceCall(
            topic=spec.topic, params=params, data=dict(my_task.data), session=self.ctx.session,
            instance_id=self.ctx.instance.id, business_key=self.ctx.instance.business_key, task_id=str(my_task.id),
            element_id=spec.bpmn_id, actor=self.ctx.actor, now=self.ctx.now, calendar=self.ctx.calendar)
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
            event_value = compute_timer_value(definition.kind, value, self.ctx.now)
        my_task._set_internal_data(event_value=event_value, qifu_provisional=tracker.provisional,
                                   qifu_evaluated_at=self.ctx.now.isoformat())

    def next_cycle(self, my_task: Any, definition: Any, event_value: dict[str, Any]) -> None:
        """Schedule a cycle's next occurrence; occurrences that fell due while we were down are skipped.

        After downtime the overdue occurrence fires once (this call follows it); the ones that would also
        have been due by now are counted as spent, not fired one after another — two months down must not
        leave a case with eight identical weekly reminders.
        """
        step = timedelta(seconds=event_value["duration"])
        nxt, skipped = to_utc(event_value["next"]) + step, 0
        while nxt <= self.ctx.now and event_value["cycles"] != 0:
            nxt += step
            skipped += 1
            if event_value["cycles"] > 0:
                event_value["cycles"] -= 1
        if skipped:
            event_value["occurrence"] = event_value.get("occurrence", 1) + skipped
            self.ctx.notes.append({"element": my_task.task_spec.bpmn_id,
                                   "note": f"停机期间错过的 {skipped} 次周期定时未补发 (missed cycle occurrences skipped)"})
        event_value["next"] = nxt.isoformat()
        my_task._set_internal_data(event_value=event_value)


def compute_timer_value(kind: str, value: Any, now: datetime) -> Any:
    """Due instant of a timer from its evaluated value: ISO date-time, ISO duration from now, or a cycle."""
    if isinstance(value, datetime):
        return to_utc(value).isoformat()
    text = str(value).strip()
    if kind == "cycle":
        parts = text.upper().split("/")
        if len(parts) not in (2, 3) or not parts[0].startswith("R"):
            raise ValueError(f"无法解析的循环定时器: {text}")
        cycles = int(parts[0][1:]) if parts[0][1:] else -1
        if len(parts) == 3:
            start = to_utc(parts[1])
            duration = TimerEventDefinition.get_timedelta_from_start(
                TimerEventDefinition.parse_iso_duration(parts[2]), start)
        else:
            duration = TimerEventDefinition.get_timedelta_from_start(
                TimerEventDefinition.parse_iso_duration(parts[1]), now)
            start = now + duration
        return {"cycles": cycles, "next": start.isoformat(), "duration": duration.total_seconds(), "occurrence": 1}
    if text.upper().startswith("P"):
        delta = TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(text), now)
        return (now + delta).isoformat()
    return to_utc(text).isoformat()


def _move_due(task: Any, due: datetime, provisional: bool) -> None:
    """Rewrite a waiting timer's stored due instant (for a cycle: its next occurrence)."""
    value = task._get_internal_data("event_value")
    value = {**value, "next": due.isoformat()} if isinstance(value, dict) else due.isoformat()
    task._set_internal_data(event_value=value, qifu_provisional=provisional)


# --- the runtime ---------------------------------------------------------------------------------------
_CACHE_PUT = "qifu_workflow_cache_put"  # session.info key: the workflow a step leaves, filed after commit


@dataclass
class StepResult:
    instance_id: int
    business_key: str
    status: str
    version: int
    event_seq: int
    opened: list[str]


def _element(task: Any, state: str | None = None) -> history.ElementRef:
    spec = task.task_spec
    return history.ElementRef(spec.bpmn_id, spec.bpmn_name, type(spec).__name__, str(task.id), state)


class Runtime:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock | None = None,
                 services: ServiceRegistry | None = None) -> None:
        self.sessions = sessions
        self.clock = clock or SystemClock()
        self.services = services or default_registry
        self.cache = WorkflowCache()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        session = self.sessions()
        try:
            yield session
            session.commit()
            committed = session.info.pop(_CACHE_PUT, None)
            if committed is not None:
                self.cache.put(*committed)
        except StaleDataError:
            session.rollback()
            raise ConflictError(instance_rows.CONFLICT) from None
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

    # -- public actions ---------------------------------------------------------------------------------
    def start(self, process_key: str, business_key: str, data: dict[str, Any] | None = None, *,
              actor: str | None = None, deployment_id: int | None = None,
              also: Callable[[Session, StepResult], None] | None = None) -> StepResult:
        """Start a case of the newest version of ``process_key`` (or of ``deployment_id``).

        ``also`` runs inside the start's transaction, after the step: writes of the caller that must be
        committed with the new case or not at all (the intake API's idempotency record). If it raises,
        nothing of the start is kept.
        """
        data = dict(data or {})
        _jsonable(data)
        with self._transaction() as session:
            deployment = find_deployment(session, process_key=process_key, deployment_id=deployment_id)
            if deployment is None:
                raise NotFoundError(f"流程未部署: {process_key}")
            now = self.clock.now()
            instance = instance_rows.insert_new(session, deployment=deployment, business_key=business_key,
                                                now=now, actor=actor)
            workflow = BpmnWorkflow(*specs_for(session, deployment.id, deployment.content_hash))

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                for t in wf.get_tasks(state=TaskState.READY):
                    t.data.update(data)

            result = self._step(session, instance, workflow, now, actor, "started", act,
                                details={"process": deployment.process_key, "version": deployment.version,
                                         "data": data})
            if also is not None:
                also(session, result)
            return result

    def complete_task(self, task_guid: str, data: dict[str, Any] | None = None, *, actor: str | None = None,
                      expected_version: int | None = None, enforce_assignee: bool = True) -> StepResult:
        """Validate ``data`` against the task's form, then complete it. Conflicts raise ConflictError."""
        with self._transaction() as session:
            found = instance_rows.read_for_task(session, task_guid)
            if found is None:
                raise ConflictError("任务已办结或不存在 (the task is no longer open)")
            instance, assignee = found
            if enforce_assignee and assignee and actor and assignee != actor:
                raise ConflictError(f"任务已由 {assignee} 认领")
            if expected_version is not None and instance.version != expected_version:
                raise ConflictError(instance_rows.CONFLICT)
            workflow = self._workflow_for_step(session, instance)
            task = workflow.get_task_from_id(UUID(task_guid))
            if task is None or task.state != TaskState.READY or not task.task_spec.manual:
                raise ConflictError("任务当前不可办理")
            clean = validate_form(form_fields(task.task_spec), data or {})

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                task.data.update(clean)
                task.run()
                completed.append(task)

            return self._step(session, instance, workflow, self.clock.now(), actor, "task_completed", act,
                              task=task, details={"form": clean})

    def fire_timer(self, timer_id: int, worker: str | None = None) -> bool:
        """Fire one due timer exactly once; False if somebody else already did (or it is no longer waiting)."""
        worker = worker or jobs.worker_name()
        with self._transaction() as session:
            timer = session.get(Timer, timer_id)
            if timer is None or timer.status != "waiting":
                return False
            now = self.clock.now()
            if to_utc(timer.due_at) > now:
                return False
            if not jobs.claim(session, timer_id, worker, now):
                return False
            instance, workflow = self._load_for_step(session, timer.instance_id)
            task = workflow.get_task_from_id(UUID(timer.task_guid))
            if task is None or task.state != TaskState.WAITING:
                session.get(Timer, timer_id).status = "cancelled"
                return False

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                if timer.kind == "cycle":
                    task.internal_data["qifu_cycle_fire"] = True
                else:
                    task._set_internal_data(event_fired=True)
                wf.refresh_timers()

            self._step(session, instance, workflow, now, worker, "timer_fired", act, task=task,
                       details={"timer": timer_id, "due_at": to_utc(timer.due_at).isoformat(),
                                "occurrence": timer.occurrence, "interrupting": timer.interrupting},
                       fired_timer=(timer.task_guid, timer.occurrence))
            return True

    def run_due_timers(self, limit: int = 100, worker: str | None = None) -> int:
        """Fire every timer due now; each in its own transaction. Returns how many fired."""
        with self._transaction() as session:
            ids = jobs.due_timer_ids(session, self.clock.now(), limit)
        fired = 0
        for timer_id in ids:
            try:
                fired += self.fire_timer(timer_id, worker)
            except ConflictError:
                continue  # the case moved on concurrently; the timer is still waiting and is retried
            except Exception as exc:  # noqa: BLE001 - record and move on; the step was rolled back
                with self._transaction() as session:
                    jobs.record_failure(session, timer_id, f"{type(exc).__name__}: {exc}")
        return fired

    def reschedule_timer(self, timer_id: int, due: datetime | str, *, reason: str, actor: str | None = None,
                         provisional: bool = False) -> StepResult:
        """Move a waiting timer's due instant (agreed completion date, calendar correction), recording why."""
        if not reason or not reason.strip():
            raise QifuError("必须填写调整期限的原因")
        new_due = to_utc(due)
        with self._transaction() as session:
            timer = session.get(Timer, timer_id)
            if timer is None or timer.status != "waiting":
                raise ConflictError("定时器不在等待状态")
            instance, workflow = self._load_for_step(session, timer.instance_id)
            task = workflow.get_task_from_id(UUID(timer.task_guid))
            old = to_utc(timer.due_at)

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                _move_due(task, new_due, provisional)

            return self._step(session, instance, workflow, self.clock.now(), actor, "timer_rescheduled", act,
                              task=task, details={"timer": timer_id, "from": old.isoformat(),
                                                  "to": new_due.isoformat(), "reason": reason.strip(),
                                                  "provisional": provisional})

    def recompute_timer(self, timer_id: int, *, reason: str, actor: str | None = None) -> dict[str, Any] | None:
        """Re-evaluate a waiting timer's expression against today's calendar (after a schedule was loaded).

        The expression is evaluated as it was when the timer started waiting: same task data, the clock set
        back to that instant. If the due instant or its provisional flag changes, the timer row and the task
        are updated in one step whose history event records old, new and why. Returns the change or None.
        """
        with self._transaction() as session:
            timer = session.get(Timer, timer_id)
            if timer is None or timer.status != "waiting" or timer.kind == "cycle":
                return None
            instance, workflow = self._load_for_step(session, timer.instance_id)
            task = workflow.get_task_from_id(UUID(timer.task_guid))
            evaluated_at = task._get_internal_data("qifu_evaluated_at") if task is not None else None
            if evaluated_at is None:
                return None
            then = to_utc(evaluated_at)
            probe = StepScriptEngine(StepContext(session, instance, then, actor, self.services))
            definition = task.task_spec.event_definition
            with track_provisional() as tracker:
                value = compute_timer_value(definition.kind, probe.evaluate(task, definition.expression), then)
            old_due, new_due = to_utc(timer.due_at), to_utc(value)
            if old_due == new_due and bool(timer.provisional) == tracker.provisional:
                return None
            change = {"timer": timer_id, "instance": instance.id, "element": timer.spec_id,
                      "from": old_due.isoformat(), "to": new_due.isoformat(),
                      "was_provisional": bool(timer.provisional), "provisional": tracker.provisional,
                      "reason": reason}

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                _move_due(task, new_due, tracker.provisional)

            self._step(session, instance, workflow, self.clock.now(), actor, "deadline_recomputed", act,
                       task=task, details=change)
            return change

    # -- reading ------------------------------------------------------------------------------------------
    def assign_task(self, task_guid: str, user: str | None, *, actor: str | None, action: str) -> None:
        """Claim, unclaim or reassign an open task, and record who did it in the case history.

        ``action`` is ``claim`` (``user`` takes an unassigned task), ``unclaim`` (``user`` gives back their
        own task) or ``reassign`` (a supervisor gives it to ``user``, or back to the group with None). The
        workflow state does not change, but the history says who held the task when (AU-1).
        """
        moves = {"claim": tasks.claim, "unclaim": tasks.unclaim, "reassign": tasks.reassign}
        events = {"claim": "task_claimed", "unclaim": "task_unclaimed", "reassign": "task_reassigned"}
        if action not in moves:
            raise ValueError(f"unknown task assignment action {action!r}")
        with self._transaction() as session:
            row = tasks.get_task(session, task_guid)
            instance = session.get(Instance, row.instance_id, with_for_update=True, populate_existing=True)
            if instance is None or instance.status != "running":
                raise ConflictError("案件已结束")
            before = row.assignee
            row = moves[action](session, task_guid, user)
            if row.assignee == before:
                return  # nothing changed (e.g. claiming one's own task again): nothing to record
            kept_under = (instance.version, instance.history_hash)
            history.append(session, instance, history.StepEvent(
                events[action], self.clock.now(), actor, task_guid, row.spec_id,
                details={"assignee": row.assignee, "previous": before}))
            instance.updated_at = self.clock.now()
            session.flush()
            # The workflow is unchanged: a live one kept for the old version is filed under the new one.
            kept = self.cache.take(instance.id, *kept_under, instance.state_json, dump_state)
            if kept is not None:
                session.info[_CACHE_PUT] = (instance.id, instance.version, instance.history_hash, kept)

    def workflow(self, session: Session, instance_id: int) -> tuple[Instance, BpmnWorkflow]:
        """Read an instance and its workflow (no lock; for display). Always built from the stored state."""
        instance = session.get(Instance, instance_id)
        if instance is None:
            raise NotFoundError(f"案件不存在: {instance_id}")
        deployment = session.get(Deployment, instance.deployment_id)
        return instance, load_state(instance.state_json, *load_specs(deployment))

    def _load_for_step(self, session: Session, instance_id: int) -> tuple[InstanceRecord, BpmnWorkflow]:
        """Read and lock an instance row, and get its workflow."""
        instance = instance_rows.read_locked(session, instance_id)
        return instance, self._workflow_for_step(session, instance)

    def _workflow_for_step(self, session: Session, instance: InstanceRecord) -> BpmnWorkflow:
        """The workflow of a locked instance row: the live one this process kept, else built from the row."""
        workflow = self.cache.take(instance.id, instance.version, instance.history_hash, instance.state_json,
                                   dump_state)
        if workflow is None:
            workflow = load_state(instance.state_json, *specs_for(session, instance.deployment_id,
                                                                  instance.content_hash))
        return workflow

    # -- the one way in -------------------------------------------------------------------------------
    def _step(self, session: Session, instance: InstanceRecord, workflow: BpmnWorkflow, now: datetime,
              actor: str | None, action: str, act: Callable[[BpmnWorkflow, list[Any]], None], *,
              task: Any = None, details: dict[str, Any] | None = None,
              fired_timer: tuple[str, int] | None = None) -> StepResult:
        if instance.status != "running" and action != "started":
            raise ConflictError("案件已结束")
        ctx = StepContext(session, instance, now, actor, self.services)
        engine = StepScriptEngine(ctx)
        workflow.script_engine = engine
        # What the task and timer rows mirror now: the step writes only the difference.
        tasks_before = tasks.ready_user_task_ids(workflow)
        timers_before = jobs.waiting_timers(workflow)
        timers_before.pop(fired_timer, None)  # its row has just been claimed as fired
        if self.cache.verify:
            tasks.check_rows(session, instance.id, tasks_before)
            jobs.check_rows(session, instance.id, timers_before)
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
            element = getattr(getattr(exc, "task_spec", None), "bpmn_id", None)
            raise ServiceTaskError(f"流程执行出错: {exc}", element=element) from None
        except Exception as exc:
            raise ServiceTaskError(f"流程执行出错: {type(exc).__name__}: {exc}") from exc

        ready = tasks.ready_user_tasks(workflow)
        done = frozenset(str(t.id) for t in completed if t.task_spec.manual)
        opened, closed = tasks.sync_open_tasks(session, instance.id, tasks_before, ready, now, engine.evaluate,
                                               completed=done, actor=actor)
        scheduled, cancelled, moved = jobs.sync_timers(session, instance.id, timers_before, workflow, now)
        if moved:
            tasks.refresh_due(session, instance.id, workflow)

        before = json.loads(instance.data_json or "{}")
        merged: dict[str, Any] = {}
        for t in completed:
            merged.update(t.data)
        after = {**before, **_jsonable(merged)}
        data_set = {k: v for k, v in after.items() if k not in before or before[k] != v}

        active = [_element(t, "ready") for t in ready]
        active += [_element(t, "waiting") for t in workflow.event_manager.tasks.values()]
        event = history.append(session, instance, history.StepEvent(
            action, now, actor, str(task.id) if task is not None else None,
            task.task_spec.bpmn_id if task is not None else None, data_set=data_set,
            completed=[_element(t) for t in completed if t.task_spec.bpmn_id], active=active,
            timers_scheduled=[{"element": r.spec_id, "task": r.task_guid, "due_at": to_utc(r.due_at).isoformat(),
                               "provisional": r.provisional, "occurrence": r.occurrence} for r in scheduled],
            timers_cancelled=[{"element": r.spec_id, "task": r.task_guid} for r in cancelled],
            details=_jsonable(details or {}), notes=_jsonable(ctx.notes) if ctx.notes else []))
        if workflow.completed:
            instance.status = "completed"
            instance.ended_at = now
        instance.state_json = dump_state(workflow)
        instance.data_json = json.dumps(after, ensure_ascii=False, default=str)
        instance_rows.write(session, instance, now)
        if instance.status == "running":  # a finished case takes no more steps: nothing to keep
            session.info[_CACHE_PUT] = (instance.id, instance.version, instance.history_hash, workflow)
        return StepResult(instance.id, instance.business_key, instance.status, instance.version, event.seq,
                          [str(t.id) for t in opened])
