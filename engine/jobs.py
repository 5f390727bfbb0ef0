"""Timers (Camunda's job executor): a row per waiting timer, claimed and fired exactly once.

- :func:`sync_timers` runs at the end of every step: each waiting timer event of the instance has one
  ``waiting`` row with its due instant; rows of timers that stopped waiting (their activity finished, the
  case moved on) become ``cancelled``.
- :func:`claim_due` marks a small batch of due rows as one executor's (``claimed_by`` and a lease,
  ``claim_expires_at``) in a short transaction of its own, so parallel executors split the due work instead
  of racing for the same rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL lets their claims pass each other).
  A killed executor's claims are taken over once their lease runs out.
- :func:`claim` is the compare-and-set ``waiting → fired``; it runs in the same transaction as the step
  the timer triggers (:meth:`engine.management.ManagementService.fire_timer`), so a timer is fired exactly
  once: if the step fails the claim rolls back with it, and any other executor's claim matches no row.
- :class:`TimerScheduler` is the loop inside ``qifu serve`` / ``qifu worker``: it sleeps until the next due
  instant, and a :class:`ChangeWatcher` wakes it when another process creates or moves a timer (PostgreSQL
  ``LISTEN``/``NOTIFY``, SQLite's change counter). Timers that fell due while nothing ran fire at start-up.
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
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from .bpmn import timer_definition
from .clock import to_utc
from .models import Timer
from .sql import Prepared, instant

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


# --- executors: claiming, failures, the next instant worth waking for ---------------------------------------
# How long an executor's claim on the due rows it took keeps other executors off them. A batch of CLAIM_BATCH
# firings takes well under a second; a killed executor's rows are taken over once the lease runs out.
LEASE_SECONDS = 60.0
CLAIM_BATCH = 10  # rows one claim takes: small, so that parallel executors share a burst evenly
NOTIFY_CHANNEL = "qifu_timer"  # PostgreSQL: sent by the timer trigger (migration 0011), payload the due instant
NOTIFY_HORIZON = timedelta(hours=1)  # the trigger notifies timers due within this; the safety poll is never longer
SQLITE_CHECK_SECONDS = 0.2  # SQLite: how often an executor reads the database's change counter


def _unclaimed(now: Any) -> Any:
    """A waiting row no executor holds a live claim on (never claimed, released, or its lease ran out)."""
    return or_(_timer.c.claim_expires_at.is_(None), _timer.c.claim_expires_at <= now)


def _claimable(session: Session, now: datetime, limit: int) -> Any:
    query = (select(_timer.c.id).where(_timer.c.status == "waiting", _timer.c.due_at <= now, _unclaimed(now))
             .order_by(_timer.c.due_at, _timer.c.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # a row another executor is firing right now
    return query


def due_timer_ids(session: Session, now: datetime, limit: int = 100) -> list[int]:
    """Due rows nobody holds, soonest first (no claim taken: for looking, :func:`claim_due` is for firing)."""
    return list(session.scalars(_claimable(session, now, limit)))


def claim_batch(session: Session, worker: str, now: datetime, limit: int = CLAIM_BATCH,
                lease_seconds: float = LEASE_SECONDS) -> list[tuple[int, int]]:
    """Mark up to ``limit`` due, unclaimed rows as ``worker``'s until ``now + lease``; ``(timer id, instance id)``
    of each, soonest due first.

    The caller commits at once: the mark, not a lock held open, keeps other executors off these rows while
    this one fires them one step at a time, and a lease that runs out (the executor was killed) frees them.
    On PostgreSQL ``SKIP LOCKED`` lets parallel claims pass each other instead of queueing on the same rows.
    """
    expires = now + timedelta(seconds=lease_seconds)
    statement = (update(_timer).where(_timer.c.id.in_(_claimable(session, now, limit).scalar_subquery()))
                 .values(claimed_by=worker, claim_expires_at=expires)
                 .returning(_timer.c.id, _timer.c.instance_id, _timer.c.due_at))
    rows = session.execute(statement).all()
    return [(tid, iid) for tid, iid, _due in sorted(rows, key=lambda r: (to_utc(r[2]), r[0]))]


def claim_due(session: Session, worker: str, now: datetime, limit: int = CLAIM_BATCH,
              lease_seconds: float = LEASE_SECONDS) -> list[int]:
    """:func:`claim_batch`'s timer ids."""
    return [tid for tid, _iid in claim_batch(session, worker, now, limit, lease_seconds)]


class FiringTimer(NamedTuple):
    """A timer row just claimed as ``fired`` by :func:`claim_for_firing`: what its firing step needs."""

    id: int
    instance_id: int
    task_guid: str
    kind: str
    occurrence: int
    due_at: datetime
    interrupting: bool | None


_FIRE = Prepared(update(_timer).where(
    _timer.c.id == bindparam("tid"), _timer.c.status == "waiting", _timer.c.due_at <= bindparam("now"),
    or_(_timer.c.claimed_by == bindparam("worker"), _timer.c.claim_expires_at.is_(None),
        _timer.c.claim_expires_at <= bindparam("now")))
    .values(status="fired", fired_at=bindparam("now"), claimed_by=bindparam("worker"), claim_expires_at=None,
            attempts=_timer.c.attempts + 1)
    .returning(_timer.c.instance_id, _timer.c.task_guid, _timer.c.kind, _timer.c.occurrence, _timer.c.due_at,
               _timer.c.interrupting))
_CANCEL_ONE = Prepared(update(_timer).where(_timer.c.id == bindparam("tid")).values(status="cancelled"))
_INSTANCE_OF = Prepared(select(_timer.c.instance_id).where(_timer.c.id == bindparam("tid")))


def instance_of(session: Session, timer_id: int) -> int | None:
    """The instance a timer row belongs to (no lock: the firing step locks the instance first)."""
    found = _INSTANCE_OF.scalars(session, {"tid": timer_id})
    return found[0] if found else None


def claim_for_firing(session: Session, timer_id: int, worker: str, now: datetime) -> FiringTimer | None:
    """Compare-and-set ``waiting → fired`` of a due row, in the firing step's transaction; the row for exactly
    one claimer, None for everybody else. Call it with the instance row already locked (the order every step
    takes its locks in: instance, then timer rows; the other order deadlocks against a step on the case).

    It matches only while the row is ``worker``'s claim or nobody's (a lease another executor took over wins
    against a slow first owner), and it commits or rolls back with the step it triggers. One statement: the
    row comes back with the update (``RETURNING``), the step needs no second read.
    """
    rows = _FIRE.execute(session, {"tid": timer_id, "now": now, "worker": worker}).fetchall()
    if not rows:
        return None
    instance_id, task_guid, kind, occurrence, due_at, interrupting = rows[0]
    return FiringTimer(timer_id, instance_id, task_guid, kind, occurrence, instant(due_at),
                       None if interrupting is None else bool(interrupting))


def claim(session: Session, timer_id: int, worker: str, now: datetime) -> bool:
    """:func:`claim_for_firing` as a yes/no."""
    return claim_for_firing(session, timer_id, worker, now) is not None


def cancel(session: Session, timer_id: int) -> None:
    """A claimed row whose timer event no longer waits (its case moved on): it will never fire."""
    _CANCEL_ONE.execute(session, {"tid": timer_id})


def release(session: Session, timer_id: int, worker: str, retry_at: datetime | None = None) -> None:
    """Give a claimed row back (its case was busy): free at ``retry_at``, or at once."""
    session.execute(update(_timer).where(_timer.c.id == timer_id, _timer.c.status == "waiting",
                                         _timer.c.claimed_by == worker).values(claim_expires_at=retry_at))


def record_failure(session: Session, timer_id: int, error: str, *, retry_at: datetime | None = None) -> Timer | None:
    """After a failed firing (rolled back), count the attempt; returns the row if that was the last one.

    The row stays claimed until ``retry_at`` (a back-off; None: any executor may retry at once). After
    MAX_ATTEMPTS it becomes ``failed``, which the caller turns into an incident in this transaction.
    """
    row = session.get(Timer, timer_id)
    if row is None or row.status != "waiting":
        return None
    row.attempts = (row.attempts or 0) + 1
    row.last_error = error[:4000]
    row.claim_expires_at = retry_at
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        row.claim_expires_at = None
        return row
    return None


def next_due(session: Session, now: datetime | None = None) -> datetime | None:
    """The next instant an executor should look: the soonest due row nobody holds, or the soonest claim to run
    out (a back-off, a killed executor's lease). Without ``now``: the soonest waiting row, claims ignored."""
    if now is None:
        value = session.scalar(select(func.min(_timer.c.due_at)).where(_timer.c.status == "waiting"))
        return to_utc(value) if value is not None else None
    free = session.scalar(select(func.min(_timer.c.due_at)).where(_timer.c.status == "waiting", _unclaimed(now)))
    held = session.scalar(select(func.min(_timer.c.claim_expires_at))
                          .where(_timer.c.claim_expires_at > now, _timer.c.status == "waiting"))
    found = [to_utc(v) for v in (free, held) if v is not None]
    return min(found) if found else None


# --- wake on change ---------------------------------------------------------------------------------------
class ChangeWatcher:
    """Tells the executor that timers may have changed in another process, so it re-reads the next due
    instant at once instead of at its safety poll. :func:`change_watcher` picks the database's way."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_change: Callable[[], None] = lambda: None

    def start(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.watch()
            except Exception:  # the database went away: poll-only until it is back
                log.warning("timer change watch failed; retrying", exc_info=True)
                self._stop.wait(2.0)

    def watch(self) -> None:
        raise NotImplementedError


class PostgresListener(ChangeWatcher):
    """``LISTEN qifu_timer`` on a connection of its own: the timer trigger's NOTIFY arrives when the step that
    inserted or moved a timer due within the hour commits."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def watch(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.on_change()  # whatever changed while we were not listening
            while not self._stop.is_set():
                if any(True for _ in conn.notifies(timeout=1.0, stop_after=1)):
                    for _ in conn.notifies(timeout=0.0):  # a burst of NOTIFYs is one wake
                        pass
                    self.on_change()


class SqliteChangeCounter(ChangeWatcher):
    """SQLite has no NOTIFY: read ``PRAGMA data_version`` (it changes when another connection commits; reading
    it writes nothing and takes no lock) every :data:`SQLITE_CHECK_SECONDS` on a connection of its own."""

    def __init__(self, path: str, interval: float = SQLITE_CHECK_SECONDS) -> None:
        super().__init__()
        self.path = path
        self.interval = interval

    def watch(self) -> None:
        import sqlite3

        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            while not self._stop.wait(self.interval):
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != last:
                    last = version
                    self.on_change()
        finally:
            conn.close()


def change_watcher(url: str) -> ChangeWatcher | None:
    """The watcher for the database at ``url`` (None for an in-memory SQLite database: one process only)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return PostgresListener(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return SqliteChangeCounter(parsed.database)
    return None


# --- the executor loop --------------------------------------------------------------------------------------
class TimerScheduler:
    """The timer executor's loop: sleep until the next due instant, fire what is due, repeat.

    ``run_due`` does one batch and returns how many rows it took (0: nothing left to do now); ``next_due_at``
    says when to look next. A :class:`ChangeWatcher` wakes the loop when another process created or moved a
    timer, so it re-reads ``next_due_at`` at once; ``poll_seconds`` is only the safety net (at most
    :data:`NOTIFY_HORIZON`, the window the PostgreSQL trigger announces). A row that was already due when a
    run last found nothing it could take cannot be fired just now (its case is busy, another transaction holds
    it): it is looked at again after ``retry_seconds``, so the executor never spins; a row that fell due after
    that run is fired at once. Timers that fell due while nothing was running fire in :meth:`start`, before
    it returns.
    """

    def __init__(self, run_due: Callable[[], int], next_due_at: Callable[[], datetime | None],
                 poll_seconds: float = 30.0, retry_seconds: float = 5.0, watcher: ChangeWatcher | None = None) -> None:
        self._run_due = run_due
        self._next_due_at = next_due_at
        self._poll = min(poll_seconds, NOTIFY_HORIZON.total_seconds())
        self._retry = min(retry_seconds, self._poll)
        self._watcher = watcher
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checked_at: datetime | None = None
        self.wakes = 0  # how often a change woke the loop (for tests and the log)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self.tick()  # timers that fell due while nothing was running
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="qifu-timer-executor", daemon=True)
        self._thread.start()
        if self._watcher is not None:
            self._watcher.start(self.wake)

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)

    def wake(self) -> None:
        """Re-read the next due instant now (a timer changed somewhere)."""
        self.wakes += 1
        self._wake.set()

    def tick(self) -> int:
        """Fire everything due now, batch after batch; returns how many rows the batches took."""
        with self._lock:
            taken = 0
            started = datetime.now(UTC)
            try:
                while not self._stop.is_set():
                    started = datetime.now(UTC)
                    n = self._run_due()
                    taken += n
                    if n == 0:
                        break
            except Exception:  # the executor must keep running; the failure is recorded per timer
                log.exception("timer executor run failed")
            self._checked_at = started  # when it last looked and found nothing more it could take
            return taken

    def _next(self) -> tuple[datetime | None, bool]:
        """The next due instant, and whether it could be read at all."""
        try:
            return self._next_due_at(), True
        except Exception:  # the database is away: look again after the retry interval
            log.exception("timer executor could not read the next due instant")
            return None, False

    def _loop(self) -> None:
        while not self._stop.is_set():
            due, ok = self._next()
            now = datetime.now(UTC)
            if not ok:
                self._stop.wait(self._retry)
                continue
            if due is None or due > now:
                wait = self._poll if due is None else min((due - now).total_seconds(), self._poll)
                self._wake.wait(wait)
                self._wake.clear()
                continue  # woken (re-read) or the wait ran out (due now, or the safety poll)
            if self._checked_at is not None and due <= self._checked_at:
                # it was due already when the last run found nothing it could take: not fireable just now
                # (its case is busy, another process holds it); changes do not cut this wait short
                self._checked_at = None
                self._stop.wait(self._retry)
                continue
            self.tick()  # due since the last look: fire it now
