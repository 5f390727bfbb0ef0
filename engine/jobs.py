"""Timers (Camunda's job executor): a row per waiting timer, claimed and fired exactly once.

- :func:`sync_timers` runs at the end of every step: each waiting timer event of the instance has one
  ``waiting`` row with its due instant; rows of timers that stopped waiting (their activity finished, the
  case moved on) become ``cancelled``.
- :func:`due_timer_ids` lists rows whose due instant has passed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL
  so parallel executors pick different rows).
- :func:`claim` is the compare-and-set ``waiting → fired``; it runs in the same transaction as the step
  the timer triggers (:meth:`engine.runtime.Runtime.fire_timer`), so a timer is fired exactly once: if the
  step fails the claim rolls back with it, and a second executor's claim matches no row.
- :class:`TimerScheduler` runs inside ``qifu serve`` / ``qifu worker``: APScheduler wakes it at the next due
  instant (and on a short poll, for timers other processes created). Timers that fell due while nothing was
  running fire at start-up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .bpmn import timer_definition
from .clock import to_utc
from .models import Timer

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def waiting_timer_tasks(workflow: Any) -> list[Any]:
    return [t for t in workflow.event_manager.tasks.values() if timer_definition(t.task_spec) is not None]


def timer_due(task: Any) -> tuple[datetime, int] | None:
    """The stored due instant and occurrence number of a waiting timer task."""
    value = task._get_internal_data("event_value")
    if value is None:
        return None
    if isinstance(value, dict):
        return to_utc(value["next"]), int(value.get("occurrence", 1))
    return to_utc(value), 1


def _boundary_info(task: Any) -> tuple[bool | None, str | None]:
    spec = task.task_spec
    if not hasattr(spec, "cancel_activity"):
        return None, None
    attached = None
    for sibling in task.parent.children if task.parent else []:
        if sibling is not task and timer_definition(sibling.task_spec) is None:
            attached = sibling.task_spec.bpmn_id
    return bool(spec.cancel_activity), attached


def sync_timers(session: Session, instance_id: int, workflow: Any,
                now: datetime) -> tuple[list[Timer], list[Timer], list[Timer]]:
    """Make the instance's waiting timer rows match its waiting timer events.

    Returns (scheduled, cancelled, moved): ``moved`` are rows whose due instant or provisional flag changed
    (an agreed date, a calendar correction), so the caller can bring the tasks they guard along.
    """
    open_rows = {(r.task_guid, r.occurrence): r for r in session.scalars(
        select(Timer).where(Timer.instance_id == instance_id, Timer.status == "waiting"))}
    wanted: dict[tuple[str, int], Any] = {}
    for task in waiting_timer_tasks(workflow):
        due = timer_due(task)
        if due is not None:
            wanted[(str(task.id), due[1])] = (task, due[0])
    scheduled, cancelled, moved = [], [], []
    for key, row in open_rows.items():
        if key not in wanted:
            row.status = "cancelled"
            cancelled.append(row)
        else:
            task, due = wanted[key]
            provisional = bool(task._get_internal_data("qifu_provisional", False))
            if to_utc(row.due_at) != due or bool(row.provisional) != provisional:
                row.due_at, row.provisional = due, provisional
                moved.append(row)
    for key, (task, due) in wanted.items():
        if key in open_rows:
            continue
        interrupting, attached = _boundary_info(task)
        row = Timer(instance_id=instance_id, task_guid=key[0], spec_id=task.task_spec.bpmn_id or task.task_spec.name,
                    kind=timer_definition(task.task_spec).kind, interrupting=interrupting, attached_to=attached,
                    occurrence=key[1], due_at=due, provisional=bool(task._get_internal_data("qifu_provisional", False)),
                    status="waiting", created_at=now, attempts=0)
        session.add(row)
        scheduled.append(row)
    return scheduled, cancelled, moved


def due_timer_ids(session: Session, now: datetime, limit: int = 100) -> list[int]:
    query = (select(Timer.id).where(Timer.status == "waiting", Timer.due_at <= now)
             .order_by(Timer.due_at, Timer.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def claim(session: Session, timer_id: int, worker: str, now: datetime) -> bool:
    """Compare-and-set ``waiting → fired``; True for exactly one claimer."""
    result = session.execute(
        update(Timer).where(Timer.id == timer_id, Timer.status == "waiting")
        .values(status="fired", fired_at=now, claimed_by=worker, attempts=Timer.attempts + 1))
    return result.rowcount == 1


def record_failure(session: Session, timer_id: int, error: str) -> None:
    """After a failed firing (rolled back), count the attempt; give up after MAX_ATTEMPTS."""
    row = session.get(Timer, timer_id)
    if row is None or row.status != "waiting":
        return
    row.attempts = (row.attempts or 0) + 1
    row.last_error = error[:4000]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"


def next_due(session: Session) -> datetime | None:
    value = session.scalar(select(func.min(Timer.due_at)).where(Timer.status == "waiting"))
    return to_utc(value) if value is not None else None


class TimerScheduler:
    """Wakes the executor when the next timer is due (APScheduler), plus a safety-net poll.

    After a run, a row that is still due could not be fired just now (its case was busy, its step failed and
    awaits a retry): it is tried again after ``retry_seconds``, not at once, so the executor never spins.
    """

    def __init__(self, run_due: Callable[[], int], next_due_at: Callable[[], datetime | None],
                 poll_seconds: float = 30.0, retry_seconds: float = 5.0) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._run_due = run_due
        self._next_due_at = next_due_at
        self._poll = poll_seconds
        self._retry = min(retry_seconds, poll_seconds)
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(timezone="UTC")

    def start(self) -> None:
        self.tick()  # timers that fell due while nothing was running
        self.scheduler.add_job(self.tick, "interval", seconds=self._poll, id="qifu-poll", coalesce=True,
                               max_instances=1)
        self.scheduler.start()
        self._arm()

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)

    def tick(self) -> int:
        with self._lock:
            fired = 0
            try:
                while True:
                    n = self._run_due()
                    fired += n
                    if n == 0:
                        break
            except Exception:  # the executor must keep running; the failure is recorded per timer
                log.exception("timer executor run failed")
            if self.scheduler.running:
                self._arm()
            return fired

    def _arm(self) -> None:
        due = self._next_due_at()
        if due is None:
            return
        now = datetime.now(UTC)
        when = due if due > now else now + timedelta(seconds=self._retry)
        self.scheduler.add_job(self.tick, "date", run_date=when, id="qifu-next", replace_existing=True)
