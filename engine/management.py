"""Jobs (Camunda's ManagementService): fire due timers, move deadlines, recompute them after a calendar change,
and look after timers whose firing keeps failing.

Every change to a case here is a step (:class:`engine.step.Stepper`), so a fired timer, a moved deadline and a
recomputed one are each recorded in the case history with why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select

from . import jobs
from .calendar import track_provisional
from .clock import to_utc
from .db import Database
from .errors import ConflictError, QifuError
from .models import Instance, Timer
from .step import Stepper, StepResult, StepScriptEngine


@dataclass
class RecomputeReport:
    checked: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)  # recompute_timer's dicts + business_key
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def moved(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["from"] != c["to"]]


class ManagementService:
    def __init__(self, db: Database, stepper: Stepper) -> None:
        self.db = db
        self.stepper = stepper

    @property
    def clock(self) -> Any:
        return self.stepper.clock

    # -- firing -----------------------------------------------------------------------------------------
    def fire_timer(self, timer_id: int, worker: str | None = None) -> bool:
        """Fire one due timer exactly once; False if somebody else already did (or it is no longer waiting)."""
        worker = worker or jobs.worker_name()
        with self.stepper.transaction() as session:
            timer = session.get(Timer, timer_id)
            if timer is None or timer.status != "waiting":
                return False
            now = self.clock.now()
            if to_utc(timer.due_at) > now:
                return False
            if not jobs.claim(session, timer_id, worker, now):
                return False
            instance, workflow = self.stepper.load(session, timer.instance_id)
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

            self.stepper.run(session, instance, workflow, now, worker, "timer_fired", act, task=task,
                             details={"timer": timer_id, "due_at": to_utc(timer.due_at).isoformat(),
                                      "occurrence": timer.occurrence, "interrupting": timer.interrupting},
                             fired_timer=(timer.task_guid, timer.occurrence), process_key=workflow.spec.name)
            return True

    def run_due_timers(self, limit: int = 100, worker: str | None = None) -> int:
        """Fire every timer due now; each in its own transaction. Returns how many fired."""
        with self.stepper.transaction() as session:
            ids = jobs.due_timer_ids(session, self.clock.now(), limit)
        fired = 0
        for timer_id in ids:
            try:
                fired += self.fire_timer(timer_id, worker)
            except ConflictError:
                continue  # the case moved on concurrently; the timer is still waiting and is retried
            except Exception as exc:  # record and move on; the step was rolled back
                with self.stepper.transaction() as session:
                    jobs.record_failure(session, timer_id, f"{type(exc).__name__}: {exc}")
        return fired

    def next_due(self) -> datetime | None:
        """When the next waiting timer falls due (None: none waits)."""
        with self.db.read() as session:
            return jobs.next_due(session)

    # -- moving deadlines -------------------------------------------------------------------------------
    def reschedule_timer(self, timer_id: int, due: datetime | str, *, reason: str, actor: str | None = None,
                         provisional: bool = False) -> StepResult:
        """Move a waiting timer's due instant (agreed completion date, calendar correction), recording why."""
        if not reason or not reason.strip():
            raise QifuError("必须填写调整期限的原因")
        new_due = to_utc(due)
        with self.stepper.transaction() as session:
            timer = session.get(Timer, timer_id)
            if timer is None or timer.status != "waiting":
                raise ConflictError("定时器不在等待状态")
            instance, workflow = self.stepper.load(session, timer.instance_id)
            task = workflow.get_task_from_id(UUID(timer.task_guid))
            old = to_utc(timer.due_at)

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                jobs.move_due(task, new_due, provisional)

            return self.stepper.run(session, instance, workflow, self.clock.now(), actor, "timer_rescheduled", act,
                                    task=task, details={"timer": timer_id, "from": old.isoformat(),
                                                        "to": new_due.isoformat(), "reason": reason.strip(),
                                                        "provisional": provisional},
                                    process_key=workflow.spec.name)

    def recompute_timer(self, timer_id: int, *, reason: str, actor: str | None = None) -> dict[str, Any] | None:
        """Re-evaluate a waiting timer's expression against today's calendar (after a schedule was loaded).

        The expression is evaluated as it was when the timer started waiting: same task data, the clock set
        back to that instant. If the due instant or its provisional flag changes, the timer row and the task
        are updated in one step whose history event records old, new and why. Returns the change or None.
        """
        with self.stepper.transaction() as session:
            timer = session.get(Timer, timer_id)
            if timer is None or timer.status != "waiting" or timer.kind == "cycle":
                return None
            instance, workflow = self.stepper.load(session, timer.instance_id)
            task = workflow.get_task_from_id(UUID(timer.task_guid))
            evaluated_at = task._get_internal_data("qifu_evaluated_at") if task is not None else None
            if evaluated_at is None:
                return None
            then = to_utc(evaluated_at)
            probe = StepScriptEngine(self.stepper.context(session, instance, then, actor))
            definition = task.task_spec.event_definition
            with track_provisional() as tracker:
                value = jobs.compute_timer_value(definition.kind, probe.evaluate(task, definition.expression), then)
            old_due, new_due = to_utc(timer.due_at), to_utc(value)
            if old_due == new_due and bool(timer.provisional) == tracker.provisional:
                return None
            change = {"timer": timer_id, "instance": instance.id, "element": timer.spec_id,
                      "from": old_due.isoformat(), "to": new_due.isoformat(),
                      "was_provisional": bool(timer.provisional), "provisional": tracker.provisional,
                      "reason": reason}

            def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
                jobs.move_due(task, new_due, tracker.provisional)

            self.stepper.run(session, instance, workflow, self.clock.now(), actor, "deadline_recomputed", act,
                             task=task, details=change, process_key=workflow.spec.name)
            return change

    def recompute_deadlines(self, *, reason: str, actor: str | None, everything: bool = False) -> RecomputeReport:
        """Re-evaluate waiting timers against the calendar as it is now; each one in its own step.

        By default only provisional timers (computed from the fallback rule) are checked: they are the ones a
        newly loaded schedule can change. ``everything`` checks every waiting timer — needed when an official
        year was corrected, because nothing records which years a deadline looked at. Run this *after* the
        calendar change is committed: each timer is its own step, so one case changing concurrently (or
        failing) leaves the others and the calendar in place; running again picks up whatever is still
        provisional.
        """
        query = (select(Timer.id, Instance.business_key).join(Instance, Instance.id == Timer.instance_id)
                 .where(Timer.status == "waiting").order_by(Timer.due_at, Timer.id))
        if not everything:
            query = query.where(Timer.provisional.is_(True))
        with self.db.read() as session:
            timers = list(session.execute(query))
        report = RecomputeReport(checked=len(timers))
        for timer_id, business_key in timers:
            try:
                change = self.recompute_timer(timer_id, reason=reason, actor=actor)
            except Exception as exc:  # one broken case must not stop the others; reported
                report.failures.append({"timer": timer_id, "error": f"{type(exc).__name__}: {exc}"})
                continue
            if change is not None:
                report.changes.append({**change, "business_key": business_key})
        return report

    # -- administration ---------------------------------------------------------------------------------
    def count_waiting(self, *, provisional: bool | None = None) -> int:
        """Waiting timers (only provisional ones, or only official ones, when asked)."""
        query = select(func.count(Timer.id)).where(Timer.status == "waiting")
        if provisional is not None:
            query = query.where(Timer.provisional.is_(provisional))
        with self.db.read() as session:
            return session.scalar(query) or 0

    def waiting_timers(self, instance_id: int) -> list[Timer]:
        """The waiting timers of one case, soonest first (detached rows)."""
        with self.db.read() as session:
            rows = list(session.scalars(select(Timer).where(Timer.instance_id == instance_id,
                                                            Timer.status == "waiting").order_by(Timer.due_at)))
            session.expunge_all()
            return rows

    def timers(self, instance_id: int) -> list[Timer]:
        """Every timer row of one case (waiting, fired, cancelled, failed), as created."""
        with self.db.read() as session:
            rows = list(session.scalars(select(Timer).where(Timer.instance_id == instance_id).order_by(Timer.id)))
            session.expunge_all()
            return rows
