"""Jobs (Camunda's ManagementService): fire due timers, move deadlines, recompute them after a calendar change,
and look after timers whose firing keeps failing (incidents: :mod:`engine.incidents`).

Every change to a case here is a step (:class:`engine.step.Stepper`), so a fired timer, a moved deadline and a
recomputed one are each recorded in the case history with why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import incidents, jobs
from .calendar import WorkdayCalendar, load_calendar, track_provisional
from .clock import to_utc
from .db import Database
from .errors import ConflictError, NotFoundError, QifuError
from .instance_rows import InstanceRecord
from .models import Deployment, Incident, Instance, Timer
from .repository import specs_for
from .state import load_state
from .step import Stepper, StepResult, StepScriptEngine

_log = logging.getLogger(__name__)


@dataclass
class ExecutorRun:
    """What one executor batch did: rows claimed, fired, failed (a busy case's row is given back)."""

    claimed: int = 0
    fired: int = 0
    failed: int = 0


@dataclass(frozen=True)
class RetryResult:
    """An incident retried: whether its timer fired, and how the incident was closed."""

    incident_id: int
    fired: bool
    resolution: str


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
            return self._fire(session, timer_id, worker, worker)

    def _fire(self, session: Session, timer_id: int, worker: str, actor: str | None,
              details: dict[str, Any] | None = None, instance_id: int | None = None) -> bool:
        """The firing step inside ``session``'s transaction: the claim (``waiting → fired``) and the step commit
        together or not at all. The instance is locked before the timer row, as every step does."""
        if instance_id is None:
            instance_id = jobs.instance_of(session, timer_id)
            if instance_id is None:
                return False
        now = self.clock.now()
        instance, workflow = self.stepper.load(session, instance_id)
        timer = jobs.claim_for_firing(session, timer_id, worker, now)
        if timer is None:  # not due, not waiting, or another executor's
            return False
        task = workflow.get_task_from_id(UUID(timer.task_guid))
        if task is None or task.state != TaskState.WAITING:
            jobs.cancel(session, timer_id)
            return False

        def act(wf: BpmnWorkflow, completed: list[Any]) -> None:
            if timer.kind == "cycle":
                task.internal_data["qifu_cycle_fire"] = True
            else:
                task._set_internal_data(event_fired=True)
            wf.refresh_timers()

        self.stepper.run(session, instance, workflow, now, actor, "timer_fired", act, task=task,
                         details={"timer": timer_id, "due_at": timer.due_at.isoformat(),
                                  "occurrence": timer.occurrence, "interrupting": timer.interrupting,
                                  **(details or {})},
                         fired_timer=(timer.task_guid, timer.occurrence), process_key=workflow.spec.name)
        return True

    def execute_due(self, *, worker: str | None = None, batch: int = jobs.CLAIM_BATCH,
                    lease_seconds: float = jobs.LEASE_SECONDS, retry_seconds: float = 0.0) -> ExecutorRun:
        """One executor batch: claim up to ``batch`` due timers for ``worker`` (committed at once, so other
        executors take the next rows), then fire each in its own step.

        A case busy with another step gives its timer back (looked at again after ``retry_seconds``); a firing
        that fails is counted and retried after ``retry_seconds`` by whichever executor comes first; the last
        allowed failure turns the timer into an incident.
        """
        worker = worker or jobs.worker_name()
        with self.stepper.transaction() as session:
            claimed = jobs.claim_batch(session, worker, self.clock.now(), batch, lease_seconds)
        run = ExecutorRun(claimed=len(claimed))
        for timer_id, instance_id in claimed:
            try:
                with self.stepper.transaction() as session:
                    run.fired += self._fire(session, timer_id, worker, worker, instance_id=instance_id)
            except ConflictError:  # the case moved on concurrently; the timer is still waiting
                with self.stepper.transaction() as session:
                    jobs.release(session, timer_id, worker, self._later(retry_seconds))
            except Exception as exc:  # record and move on; the step was rolled back
                run.failed += 1
                self._record_failure(timer_id, exc, retry_seconds)
        return run

    def run_due_timers(self, limit: int = 100, worker: str | None = None) -> int:
        """Fire the timers due now (up to ``limit``), each in its own step. Returns how many fired."""
        return self.execute_due(worker=worker, batch=limit).fired

    def _later(self, seconds: float) -> datetime | None:
        return self.clock.now() + timedelta(seconds=seconds) if seconds > 0 else None

    def _record_failure(self, timer_id: int, exc: BaseException, retry_seconds: float) -> None:
        """Count a failed firing; the last allowed one opens an incident naming the element that failed."""
        error = f"{type(exc).__name__}: {exc}"
        try:
            with self.stepper.transaction() as session:
                given_up = jobs.record_failure(session, timer_id, error, retry_at=self._later(retry_seconds))
                if given_up is not None:
                    incidents.open_incident(session, kind="timer", error=error, now=self.clock.now(),
                                            retries=given_up.attempts, instance_id=given_up.instance_id,
                                            element=getattr(exc, "element", None) or given_up.spec_id,
                                            timer_id=timer_id)
                    _log.error("timer %s of instance %s gave up after %s attempts: %s", timer_id,
                               given_up.instance_id, given_up.attempts, error)
        except Exception:  # the database is away: the claim's lease runs out and the timer is tried again
            _log.exception("could not record the failure of timer %s", timer_id)

    def next_due(self) -> datetime | None:
        """When an executor should look next: the next due timer nobody holds, or the next claim to run out."""
        with self.db.read() as session:
            return jobs.next_due(session, self.clock.now())

    def executor(self, *, worker: str | None = None, poll_seconds: float = 30.0, retry_seconds: float = 5.0,
                 batch: int = jobs.CLAIM_BATCH, lease_seconds: float = jobs.LEASE_SECONDS,
                 watch: bool = True) -> jobs.TimerScheduler:
        """The timer executor of ``qifu serve`` / ``qifu worker`` (not started): batches of claimed timers,
        woken at the next due instant and when another process changes a timer."""
        worker = worker or jobs.worker_name()

        def run_due() -> int:
            return self.execute_due(worker=worker, batch=batch, lease_seconds=lease_seconds,
                                    retry_seconds=retry_seconds).claimed

        return jobs.TimerScheduler(run_due, self.next_due, poll_seconds=poll_seconds, retry_seconds=retry_seconds,
                                   watcher=jobs.change_watcher(self.db.url) if watch else None)

    # -- incidents --------------------------------------------------------------------------------------
    def incidents(self, *, status: str | None = incidents.OPEN, kind: str | None = None,
                  business_key: str | None = None, page: int = 1,
                  per_page: int = incidents.PAGE_SIZE) -> incidents.IncidentPage:
        """One page of incidents, newest first, with the counts by status (detached rows)."""
        with self.db.read() as session:
            found = incidents.page(session, status=status, kind=kind, business_key=business_key, page=page,
                                   per_page=per_page)
            session.expunge_all()
            return found

    def incident(self, incident_id: int) -> Incident:
        """One incident (detached); NotFoundError if there is none."""
        with self.db.read() as session:
            row = session.get(Incident, incident_id)
            if row is None:
                raise NotFoundError(f"异常事件 #{incident_id} 不存在")
            session.expunge(row)
            return row

    def incident_counts(self) -> dict[str, int]:
        """``{"open": n, "resolved": m}``: what the metrics export and the nav badge show."""
        with self.db.read() as session:
            return incidents.counts(session)

    def count_open_incidents(self) -> int:
        return self.incident_counts()[incidents.OPEN]

    def resolve_incident(self, incident_id: int, *, actor: str | None, note: str) -> Incident:
        """Close an open incident by hand, saying how it was dealt with (the timer stays ``failed``)."""
        with self.stepper.transaction() as session:
            row = incidents.resolve(session, incident_id, actor=actor, note=note, now=self.clock.now())
            session.flush()
            session.expunge(row)
            return row

    def retry_incident(self, incident_id: int, *, actor: str | None) -> RetryResult:
        """Run an incident's work again. A timer fires now through the normal step, and the incident closes in
        that step's transaction; if it fails again the incident stays open with the new error (and the error
        is raised). A queued job goes back into its queue (the queue's registered requeue)."""
        with self.db.read() as session:
            row = session.get(Incident, incident_id)
            kind = row.kind if row is not None else None
        if kind == "job":
            return self._requeue(incident_id, actor)
        try:
            with self.stepper.transaction() as session:
                row = incidents.get_open(session, incident_id)
                now = self.clock.now()
                timer = session.get(Timer, row.timer_id) if row.timer_id is not None else None
                if timer is None or timer.status not in ("failed", "waiting"):
                    incidents.close(row, actor=actor, now=now, resolution="cancelled",
                                    note="定时器已不在等待状态，无需重试")
                    return RetryResult(incident_id, fired=False, resolution="cancelled")
                # the case first, then its timer row: the lock order of every step (the other order deadlocks)
                session.execute(select(Instance.id).where(Instance.id == timer.instance_id).with_for_update())
                timer.status, timer.claim_expires_at = "waiting", None
                session.flush()
                worker = f"retry:{actor or '-'}"
                fired = self._fire(session, timer.id, worker, actor, {"retry_of_incident": incident_id},
                                   instance_id=timer.instance_id)
                resolution = "retried" if fired else "cancelled"
                incidents.close(row, actor=actor, now=now, resolution=resolution,
                                note=None if fired else "案件已不再等待该定时器（已推进或结束），无需触发")
                return RetryResult(incident_id, fired=fired, resolution=resolution)
        except (NotFoundError, ConflictError):
            raise  # already dealt with, or the case was busy with another step: nothing ran, nothing counted
        except QifuError as exc:
            self._retry_failed(incident_id, exc)
            raise QifuError(f"重试失败，异常事件仍未解决：{exc.message}", element=exc.element) from exc
        except Exception as exc:
            self._retry_failed(incident_id, exc)
            raise QifuError(f"重试失败，异常事件仍未解决：{type(exc).__name__}: {exc}") from exc

    def _retry_failed(self, incident_id: int, exc: BaseException) -> None:
        """A retry that failed: the incident stays open, with one attempt more and the new error."""
        with self.stepper.transaction() as session:
            row = session.get(Incident, incident_id)
            if row is None or row.status != incidents.OPEN:
                return
            error = f"{type(exc).__name__}: {exc}"
            row.retries += 1
            row.error, row.updated_at = error[:incidents.MAX_ERROR], self.clock.now()
            row.element = getattr(exc, "element", None) or row.element
            if row.timer_id is not None:
                timer = session.get(Timer, row.timer_id)
                if timer is not None:
                    timer.attempts, timer.last_error = (timer.attempts or 0) + 1, error[:4000]

    def _requeue(self, incident_id: int, actor: str | None) -> RetryResult:
        with self.stepper.transaction() as session:
            row = incidents.get_open(session, incident_id)
            queue = self.stepper.services.job_queue(row.job_type or "")
            if queue is None or row.job_id is None:
                raise QifuError(f"无法重试：未注册的作业队列“{row.job_type}”")
            queue.requeue(session, row.job_id, self.clock.now())
            incidents.close(row, actor=actor, now=self.clock.now(), resolution="requeued")
            return RetryResult(incident_id, fired=False, resolution="requeued")

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

    # -- dry run of a calendar change: what recompute_deadlines would move, nothing written ----------------
    def preview_recompute(self, days: Mapping[date, bool], *, official_years: Iterable[int] = (),
                          everything: bool = False, reason: str = "") -> RecomputeReport:
        """The changes :meth:`recompute_deadlines` would make if the calendar had ``days`` (a day's working
        flag) and ``official_years`` were official — so an administrator sees which open deadlines a correction
        or an imported schedule moves before applying it.

        Same timers (provisional ones, or every waiting one with ``everything``) and the same evaluation as
        :meth:`recompute_timer` — the expression with the task data and the clock of the instant the timer
        started waiting — against the current calendar with ``days`` laid over it. One read transaction: no
        row is locked or written, and the live workflows this process keeps are not touched.
        """
        query = (select(Timer.id, Timer.instance_id, Timer.task_guid, Timer.spec_id, Timer.kind, Timer.due_at,
                        Timer.provisional, Instance.business_key)
                 .join(Instance, Instance.id == Timer.instance_id)
                 .where(Timer.status == "waiting").order_by(Timer.due_at, Timer.id))
        if not everything:
            query = query.where(Timer.provisional.is_(True))
        report = RecomputeReport()
        with self.db.read() as session:
            current = load_calendar(session, self.stepper.calendar_settings)
            proposed = WorkdayCalendar({**current.days, **days}, current.official_years | set(official_years),
                                       current.settings)
            timers = list(session.execute(query))
            report.checked = len(timers)
            by_instance: dict[int, list[Any]] = {}
            for row in timers:
                if row.kind != "cycle":  # a cycle's next occurrence does not count working days
                    by_instance.setdefault(row.instance_id, []).append(row)
            found: list[tuple[Any, dict[str, Any]]] = []
            for instance_id, rows in by_instance.items():
                try:
                    found.extend(self._preview_instance(session, instance_id, rows, proposed, reason))
                except Exception as exc:  # one broken case must not hide the others; reported
                    report.failures.extend({"timer": r.id, "error": f"{type(exc).__name__}: {exc}"} for r in rows)
        found.sort(key=lambda item: (to_utc(item[0].due_at), item[0].id))
        report.changes = [change for _, change in found]
        return report

    def _preview_instance(self, session: Session, instance_id: int, rows: list[Any], calendar: WorkdayCalendar,
                          reason: str) -> list[tuple[Any, dict[str, Any]]]:
        """The would-be changes of one case's timers (its workflow built from the row once, for all of them)."""
        row = session.execute(
            select(Instance.id, Instance.deployment_id, Deployment.content_hash, Instance.business_key,
                   Instance.status, Instance.state_json, Instance.data_json, Instance.version, Instance.history_seq,
                   Instance.history_hash)
            .join(Deployment, Deployment.id == Instance.deployment_id).where(Instance.id == instance_id)).one()
        record = InstanceRecord(**row._asdict())
        workflow = load_state(record.state_json, *specs_for(session, record.deployment_id, record.content_hash))
        out = []
        for timer in rows:
            task = workflow.get_task_from_id(UUID(timer.task_guid))
            evaluated_at = task._get_internal_data("qifu_evaluated_at") if task is not None else None
            if evaluated_at is None:
                continue
            then = to_utc(evaluated_at)
            probe = StepScriptEngine(replace(self.stepper.context(session, record, then, None), _calendar=calendar))
            definition = task.task_spec.event_definition
            with track_provisional() as tracker:
                value = jobs.compute_timer_value(definition.kind, probe.evaluate(task, definition.expression), then)
            old_due, new_due = to_utc(timer.due_at), to_utc(value)
            if old_due == new_due and bool(timer.provisional) == tracker.provisional:
                continue
            out.append((timer, {"timer": timer.id, "instance": instance_id, "element": timer.spec_id,
                                "from": old_due.isoformat(), "to": new_due.isoformat(),
                                "was_provisional": bool(timer.provisional), "provisional": tracker.provisional,
                                "reason": reason, "business_key": timer.business_key}))
        return out
