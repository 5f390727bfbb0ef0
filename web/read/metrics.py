"""What ``/metrics`` reads from the database at scrape time: counts by process, timers, incidents.

Each figure is one grouped ``COUNT`` over an index (``instance(status)``, ``human_task`` with its instance by
primary key, ``timer(status, due_at)``), in one read-only transaction, so a scrape stays cheap at 100,000
cases (``tests/production/test_observability.py`` prints the plans and the time). No service of the engine
counts by process yet, so this module reads the engine's tables with SQL Core, read-only — the one place in
``web/`` that does; it belongs in the engine's management service (Camunda's process-definition statistics)
and moves there when that exists.

Lateness of fired timers is read here too, over a recent window (``fired_at − due_at`` of the timers that
fell due in the last :data:`LATENESS_WINDOW`): the rows say it whichever process fired them, also the
``qifu worker`` executors of a deployment that no web worker shares memory with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from engine.clock import to_utc
from engine.models import Deployment, HumanTask, Instance, Timer

LATENESS_WINDOW = timedelta(minutes=10)

_inst, _task, _dep, _timer = Instance.__table__, HumanTask.__table__, Deployment.__table__, Timer.__table__


@dataclass
class ProcessCounts:
    open_cases: int = 0
    open_tasks: int = 0
    overdue_tasks: int = 0


@dataclass
class Snapshot:
    """The database's figures at one instant."""

    by_process: dict[str, ProcessCounts] = field(default_factory=dict)
    waiting_timers: int = 0
    overdue_timers: int = 0  # waiting although due: the executors are behind (or none runs)
    failed_timers: int = 0
    lateness: list[float] = field(default_factory=list)  # seconds, of timers due within the window
    incidents: int = 0


def _process_keys(session: Any) -> dict[int, str]:
    return dict(session.execute(select(_dep.c.id, _dep.c.process_key)).all())


def snapshot(engine: Any, now: datetime) -> Snapshot:
    """Every figure ``/metrics`` shows from the database, in one read transaction."""
    out = Snapshot()
    with engine.read() as session:
        keys = _process_keys(session)
        for key in keys.values():
            out.by_process.setdefault(key, ProcessCounts())
        cases = (select(_inst.c.deployment_id, func.count()).where(_inst.c.status == "running")
                 .group_by(_inst.c.deployment_id))
        for deployment_id, count in session.execute(cases):
            out.by_process[keys.get(deployment_id, "?")].open_cases += count
        overdue = func.sum(case((_task.c.due_at < now, 1), else_=0))
        tasks = (select(_inst.c.deployment_id, func.count(), overdue)
                 .select_from(_task.join(_inst, _inst.c.id == _task.c.instance_id))
                 .group_by(_inst.c.deployment_id))
        for deployment_id, count, late in session.execute(tasks):
            counts = out.by_process[keys.get(deployment_id, "?")]
            counts.open_tasks += count
            counts.overdue_tasks += int(late or 0)
        waiting = _timer.c.status == "waiting"
        out.waiting_timers = session.scalar(select(func.count()).where(waiting)) or 0
        out.overdue_timers = session.scalar(select(func.count()).where(waiting, _timer.c.due_at < now)) or 0
        out.failed_timers = session.scalar(select(func.count()).where(_timer.c.status == "failed")) or 0
        recent = session.execute(select(_timer.c.due_at, _timer.c.fired_at).where(
            _timer.c.status == "fired", _timer.c.due_at >= now - LATENESS_WINDOW, _timer.c.due_at <= now))
        out.lateness = [max(0.0, (to_utc(fired) - to_utc(due)).total_seconds())
                        for due, fired in recent if fired is not None]
    out.incidents = engine.management.count_open_incidents()
    return out
