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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from .bpmn import timer_definition
from .clock import to_utc
from .models import Timer
from .sql import Prepared

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3

# Statements of every step, built once (building one per call costs more than running it).
_timer = Timer.__table__
_ONE_WAITING = (_timer.c.instance_id == bindparam("iid"), _timer.c.status == "waiting",
                _timer.c.task_guid == bindparam("guid"), _timer.c.occurrence == bindparam("occ"))
_CANCEL = Prepared(update(_timer).where(*_ONE_WAITING).values(status="cancelled"))
_MOVE = Prepared(update(_timer).where(*_ONE_WAITING).values(due_at=bindparam("due"), provisional=bindparam("prov")))
_INSERT = Prepared(insert(_timer))
_OPEN = (select(_timer.c.task_guid, _timer.c.occurrence, _timer.c.status)
         .where(_timer.c.instance_id == bindparam("iid"), _timer.c.status.in_(("waiting", "failed"))))


# --- timer arithmetic --------------------------------------------------------------------------------------
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


def next_occurrence(event_value: dict[str, Any], now: datetime) -> int:
    """Move a cycle to its next occurrence after ``now``, in place; returns how many were skipped.

    After downtime the overdue occurrence fires once; the ones that would also have been due by now are
    counted as spent, not fired one after another — two months down must not leave a case with eight
    identical weekly reminders.
    """
    step = timedelta(seconds=event_value["duration"])
    nxt, skipped = to_utc(event_value["next"]) + step, 0
    while nxt <= now and event_value["cycles"] != 0:
        nxt += step
        skipped += 1
        if event_value["cycles"] > 0:
            event_value["cycles"] -= 1
    if skipped:
        event_value["occurrence"] = event_value.get("occurrence", 1) + skipped
    event_value["next"] = nxt.isoformat()
    return skipped


def move_due(task: Any, due: datetime, provisional: bool) -> None:
    """Rewrite a waiting timer's stored due instant (for a cycle: its next occurrence)."""
    value = task._get_internal_data("event_value")
    value = {**value, "next": due.isoformat()} if isinstance(value, dict) else due.isoformat()
    task._set_internal_data(event_value=value, qifu_provisional=provisional)


# --- timer rows --------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class TimerChange:
    """A timer row a step scheduled, cancelled or moved, as the history event records it."""

    spec_id: str
    task_guid: str
    due_at: datetime
    provisional: bool
    occurrence: int


class WaitingTimer(NamedTuple):
    due: datetime
    provisional: bool
    spec_id: str


WaitingTimers = dict[tuple[str, int], WaitingTimer]


def waiting_timers(workflow: Any) -> WaitingTimers:
    """``(task guid, occurrence) → WaitingTimer`` of every waiting timer event: what the rows mirror."""
    out: WaitingTimers = {}
    for task in waiting_timer_tasks(workflow):
        due = timer_due(task)
        if due is not None:
            out[(str(task.id), due[1])] = WaitingTimer(due[0], bool(task._get_internal_data("qifu_provisional", False)),
                                                       task.task_spec.bpmn_id or task.task_spec.name)
    return out


def check_rows(session: Session, instance_id: int, expected: WaitingTimers) -> None:
    """Verify mode: waiting rows are exactly the waiting timer events (a row the executor gave up on as
    ``failed`` still stands for its event). Raises AssertionError."""
    rows = {(r.task_guid, r.occurrence): r.status for r in session.connection().execute(_OPEN, {"iid": instance_id})}
    waiting = {key for key, status in rows.items() if status == "waiting"}
    if not waiting <= set(expected) <= set(rows):
        raise AssertionError(f"timer rows of instance {instance_id} do not mirror its waiting timer events: "
                             f"rows {sorted(rows.items())}, workflow {sorted(expected)}")


def sync_timers(session: Session, instance_id: int, before: WaitingTimers, workflow: Any,
                now: datetime) -> tuple[list[TimerChange], list[TimerChange], list[TimerChange]]:
    """Write the step's changes to the instance's timer rows.

    ``before`` is :func:`waiting_timers` of the workflow as the step found it, which the waiting rows mirror
    (every step leaves them so, in the same transaction); it is compared with the workflow now. Returns
    (scheduled, cancelled, moved): ``moved`` are rows whose due instant or provisional flag changed (an
    agreed date, a calendar correction), so the caller can bring the tasks they guard along. Only what
    changed is written, with SQL Core: this runs in every step (see :mod:`engine.instance_rows`).
    """
    after = waiting_timers(workflow)
    cancelled = [TimerChange(t.spec_id, guid, t.due, t.provisional, occ)
                 for (guid, occ), t in before.items() if (guid, occ) not in after]
    moved = [TimerChange(t.spec_id, guid, t.due, t.provisional, occ) for (guid, occ), t in after.items()
             if (guid, occ) in before and before[(guid, occ)][:2] != t[:2]]
    scheduled = [TimerChange(t.spec_id, guid, t.due, t.provisional, occ)
                 for (guid, occ), t in after.items() if (guid, occ) not in before]
    if cancelled:
        _CANCEL.execute(session, [{"iid": instance_id, "guid": c.task_guid, "occ": c.occurrence} for c in cancelled])
    if moved:
        _MOVE.execute(session, [{"iid": instance_id, "guid": m.task_guid, "occ": m.occurrence, "due": m.due_at,
                                 "prov": m.provisional} for m in moved])
    if scheduled:
        rows = []
        for new in scheduled:
            task = workflow.get_task_from_id(UUID(new.task_guid))
            interrupting, attached = _boundary_info(task)
            rows.append({"instance_id": instance_id, "task_guid": new.task_guid, "spec_id": new.spec_id,
                         "kind": timer_definition(task.task_spec).kind, "interrupting": interrupting,
                         "attached_to": attached, "occurrence": new.occurrence, "due_at": new.due_at,
                         "provisional": new.provisional, "status": "waiting", "created_at": now, "attempts": 0,
                         "fired_at": None, "claimed_by": None, "last_error": None})
        _INSERT.execute(session, rows)
    return scheduled, cancelled, moved


def due_timer_ids(session: Session, now: datetime, limit: int = 100) -> list[int]:
    query = (select(Timer.id).where(Timer.status == "waiting", Timer.due_at <= now)
             .order_by(Timer.due_at, Timer.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


_CLAIM = Prepared(update(_timer).where(_timer.c.id == bindparam("tid"), _timer.c.status == "waiting")
                  .values(status="fired", fired_at=bindparam("now"), claimed_by=bindparam("worker"),
                          attempts=_timer.c.attempts + 1))


def claim(session: Session, timer_id: int, worker: str, now: datetime) -> bool:
    """Compare-and-set ``waiting → fired``; True for exactly one claimer."""
    return _CLAIM.execute(session, {"tid": timer_id, "now": now, "worker": worker}).rowcount == 1


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
